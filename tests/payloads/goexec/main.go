// Go's os/exec under km (tests/vfork.rs): Go starts children with
// clone(CLONE_VM|CLONE_VFORK) from a multi-threaded runtime and learns of a
// failed exec through a pipe. Runs itself as the child program.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
)

func main() {
	if len(os.Args) > 1 {
		child(os.Args[1])
		return
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Println("os.Executable:", err)
		os.Exit(1)
	}
	// A goroutine keeps running while children are started.
	var spins atomic.Int64
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			default:
				spins.Add(1)
			}
		}
	}()
	out, err := exec.Command(self, "hello").Output()
	fmt.Printf("output %q, error %v\n", out, err)
	cmd := exec.Command(self, "stdin")
	cmd.Stdin = strings.NewReader("through stdin")
	out, err = cmd.Output()
	fmt.Printf("output %q, error %v\n", out, err)
	err = exec.Command(self, "exit3").Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		fmt.Println("exit code", exit.ExitCode())
	} else {
		fmt.Println("exit3:", err)
	}
	err = exec.Command("/nonexistent/program").Run()
	fmt.Println("missing program:", err)
	for i := 0; i < 20; i++ {
		if out, err := exec.Command(self, "hello").Output(); err != nil || string(out) != "hello\n" {
			fmt.Printf("run %d: %q %v\n", i, out, err)
		}
	}
	close(done)
	fmt.Println("spinning goroutine ran:", spins.Load() > 0)
}

func child(mode string) {
	switch mode {
	case "hello":
		fmt.Println("hello")
	case "stdin":
		b := make([]byte, 64)
		n, _ := os.Stdin.Read(b)
		fmt.Printf("read %q\n", b[:n])
	case "exit3":
		os.Exit(3)
	}
}
