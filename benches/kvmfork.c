/* The floor of a fork under any monitor that gives each process a VM of its own,
 * run natively: `kvmfork N` forks N children one after another, each creating
 * only what a fork child's VM needs from KVM (a VM, one memslot over the memory
 * it inherited, one vCPU) before it tells its parent it is done and exits. KVM
 * binds a VM to the address space that created it, so the child cannot take
 * them over from its parent. As km's fork children report their exit before
 * their teardown, the parent goes on when the child's report comes and reaps
 * each child after the next one has reported. `kvmfork 0` only sets up.
 *
 * `kvmfork run N`: each child also gives its vCPU the CPUID table (fetched once,
 * before the forks, as km does), 64-bit user-mode registers over page tables the
 * parent built in the inherited memory, and runs it to its first exit: the guest
 * writes one stack word and reads an address no memslot backs (KVM_EXIT_MMIO).
 * That is the least any fork child's guest does (the code page and a stack page
 * faulted into the new VM's empty MMU, one exit to the monitor), before it returns
 * from fork, touches its libc's pages and calls exit. */
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
#define KVM_GET_VCPU_MMAP_SIZE 0xae04
#define KVM_GET_SUPPORTED_CPUID 0xc008ae05
#define KVM_CREATE_VCPU 0xae41
#define KVM_SET_USER_MEMORY_REGION 0x4020ae46
#define KVM_RUN 0xae80
#define KVM_SET_REGS 0x4090ae82
#define KVM_GET_SREGS 0x8138ae83
#define KVM_SET_SREGS 0x4138ae84
#define KVM_SET_CPUID2 0x4008ae90
#define KVM_EXIT_MMIO 6

struct region {
    uint32_t slot, flags;
    uint64_t guest_phys_addr, memory_size, userspace_addr;
};

struct segment {
    uint64_t base;
    uint32_t limit;
    uint16_t selector;
    uint8_t type, present, dpl, db, s, l, g, avl, unusable, padding;
};

struct sregs {
    struct segment cs, ds, es, fs, gs, ss, tr, ldt;
    struct {
        uint64_t base;
        uint16_t limit, padding[3];
    } gdt, idt;
    uint64_t cr0, cr2, cr3, cr4, cr8, efer, apic_base, interrupt_bitmap[4];
};

struct cpuid {
    uint32_t nent, padding;
    struct {
        uint32_t function, index, flags, eax, ebx, ecx, edx, padding[3];
    } entries[256];
};

/* As much guest memory as a small payload's fork child exposes. */
#define MEMORY (16u << 20)
/* Guest layout (guest-physical, identity-mapped below 2 MiB). */
#define PML4 0x1000
#define CODE 0x10000
#define STACK_TOP 0x31000
#define UNBACKED_VA 0x200000   /* one 2 MiB page, over: */
#define UNBACKED_GPA (1ull << 30) /* past the memslot */

/* mov %al,-8(%rsp); mov UNBACKED_VA,%al (its 4 bytes: 0x00200000); jmp . */
static const uint8_t guest_code[] = {0x88, 0x44, 0x24, 0xf8, 0x8a, 0x04, 0x25,
                                     0x00, 0x00, 0x20, 0x00, 0xeb, 0xfe};

static void build_guest(char *mem) {
    uint64_t *pml4 = (uint64_t *)(mem + PML4), *pdpt = pml4 + 512, *pd = pdpt + 512,
             *pt = pd + 512;
    /* Present, writable, user, accessed (and dirty on leaves), as km writes them. */
    pml4[0] = (PML4 + 0x1000) | 0x27;
    pdpt[0] = (PML4 + 0x2000) | 0x27;
    pd[0] = (PML4 + 0x3000) | 0x27;
    pd[UNBACKED_VA >> 21] = UNBACKED_GPA | 0xe7;
    pt[CODE >> 12] = CODE | 0x65;
    pt[(STACK_TOP >> 12) - 1] = (STACK_TOP - 0x1000) | 0x67;
    memcpy(mem + CODE, guest_code, sizeof guest_code);
}

static void user_segment(struct segment *s, uint16_t selector, int code) {
    *s = (struct segment){.limit = 0xffffffff, .selector = selector, .type = code ? 11 : 3,
                          .present = 1, .dpl = 3, .db = !code, .s = 1, .l = code, .g = 1};
}

/* In the child: CPUID, registers, one run to the first exit. */
static int run_guest(int kvm, int vcpu, struct cpuid *cpuid) {
    if (ioctl(vcpu, KVM_SET_CPUID2, cpuid) != 0)
        return 0;
    struct sregs s;
    if (ioctl(vcpu, KVM_GET_SREGS, &s) != 0)
        return 0;
    user_segment(&s.cs, 0x33, 1);
    user_segment(&s.ss, 0x2b, 0);
    s.ds = s.es = s.fs = s.gs = s.ss;
    s.cr0 = 0x80050033; /* PG, AM, WP, NE, ET, MP, PE */
    s.cr3 = PML4;
    s.cr4 = 0x6a0; /* OSXMMEXCPT, OSFXSR, PGE, PAE */
    s.efer = 0xd01; /* NXE, LMA, LME, SCE */
    uint64_t regs[18] = {0};
    regs[6] = STACK_TOP;  /* rsp */
    regs[16] = CODE;      /* rip */
    regs[17] = 2;         /* rflags */
    if (ioctl(vcpu, KVM_SET_SREGS, &s) != 0 || ioctl(vcpu, KVM_SET_REGS, regs) != 0)
        return 0;
    int size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    char *run = size > 0 ? mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0) : MAP_FAILED;
    if (run == MAP_FAILED || ioctl(vcpu, KVM_RUN, 0) != 0)
        return 0;
    return *(uint32_t *)(run + 8) == KVM_EXIT_MMIO;
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    int run = argc > 2 && strcmp(argv[1], "run") == 0;
    long n = atol(argv[argc - 1]);
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    char *mem = mmap(NULL, MEMORY, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    static struct cpuid cpuid = {.nent = 256};
    if (kvm < 0 || mem == MAP_FAILED || (run && ioctl(kvm, KVM_GET_SUPPORTED_CPUID, &cpuid) != 0))
        return 1;
    memset(mem, 1, 1 << 20);
    build_guest(mem);
    pid_t previous = 0;
    for (long i = 0; i < n; i++) {
        int done[2];
        if (pipe(done) != 0)
            return 1;
        pid_t pid = fork();
        if (pid == 0) {
            struct region r = {.memory_size = MEMORY, .userspace_addr = (uintptr_t)mem};
            int vm = ioctl(kvm, KVM_CREATE_VM, 0);
            int vcpu = -1;
            int ok = vm >= 0 && ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r) == 0 &&
                     (vcpu = ioctl(vm, KVM_CREATE_VCPU, 0)) >= 0 &&
                     (!run || run_guest(kvm, vcpu, &cpuid));
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
