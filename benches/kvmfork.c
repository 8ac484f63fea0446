/* The floor of a fork under any monitor that gives each process a VM of its own,
 * run natively: `kvmfork N` forks N children one after another, each creating
 * only what a fork child's VM needs from KVM (a VM, one memslot over the memory
 * it inherited, one vCPU) before it tells its parent it is done and exits. KVM
 * binds a VM to the address space that created it, so the child cannot take
 * them over from its parent. As km's fork children report their exit before
 * their teardown, the parent goes on when the child's report comes and reaps
 * each child after the next one has reported. `kvmfork 0` only sets up. */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/* From linux/kvm.h (musl-gcc does not see the kernel's headers). */
#define KVM_CREATE_VM 0xae01
#define KVM_CREATE_VCPU 0xae41
#define KVM_SET_USER_MEMORY_REGION 0x4020ae46

struct region {
    uint32_t slot, flags;
    uint64_t guest_phys_addr, memory_size, userspace_addr;
};

/* As much guest memory as a small payload's fork child exposes. */
#define MEMORY (16u << 20)

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    long n = atol(argv[1]);
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    char *mem = mmap(NULL, MEMORY, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (kvm < 0 || mem == MAP_FAILED)
        return 1;
    memset(mem, 1, 1 << 20);
    pid_t previous = 0;
    for (long i = 0; i < n; i++) {
        int done[2];
        if (pipe(done) != 0)
            return 1;
        pid_t pid = fork();
        if (pid == 0) {
            struct region r = {.memory_size = MEMORY, .userspace_addr = (uintptr_t)mem};
            int vm = ioctl(kvm, KVM_CREATE_VM, 0);
            int ok = vm >= 0 && ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r) == 0 &&
                     ioctl(vm, KVM_CREATE_VCPU, 0) >= 0;
            char report = ok ? 'y' : 'n';
            _exit(write(done[1], &report, 1) == 1 && ok ? 0 : 1);
        }
        char report = 0;
        close(done[1]);
        if (pid < 0 || read(done[0], &report, 1) != 1 || report != 'y')
            return 1;
        close(done[0]);
        int st;
        if (previous && (waitpid(previous, &st, 0) != previous || st != 0))
            return 1;
        previous = pid;
    }
    int st;
    return previous && (waitpid(previous, &st, 0) != previous || st != 0);
}
