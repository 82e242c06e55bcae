/* first-calls EXE FUNCS OUT CMD [ARGS...]: run CMD (e.g. a script that runs
 * the binary EXE many times) under ptrace and append to OUT the functions of
 * EXE that are called, each once, in the order of their first call, across
 * every process CMD starts.
 *
 * FUNCS lists EXE's functions as "HEXADDR NAME" lines (link-time addresses,
 * from `nm`). A breakpoint is set at each function's entry whenever a traced
 * process executes EXE; a process that hits one records the name, gets its
 * original byte back and goes on. A fork inherits the breakpoints not hit yet
 * and is traced the same way; a process that executes another program (and
 * has not run EXE before) is traced on for the programs it starts; one that
 * turns from EXE into another program (a container's process) is let go.
 * The first call matters: functions are laid out in this order
 * (scripts/symbol-order.sh), so the code a command runs is packed together.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

struct func { uint64_t addr; char *name; long orig; };
static struct func *funcs;
static size_t nfuncs;
static FILE *out;
/* Which functions were recorded already (by any process). */
static unsigned char *recorded;

static char exe[4096];

static void die(const char *what) { perror(what); exit(2); }

/* Whether process pid now runs EXE. */
static int runs_exe(pid_t pid) {
    char path[64], target[4096];
    snprintf(path, sizeof path, "/proc/%d/exe", pid);
    ssize_t n = readlink(path, target, sizeof target - 1);
    if (n < 0) return 0;
    target[n] = 0;
    return strcmp(target, exe) == 0;
}

static int cmp_addr(const void *a, const void *b) {
    const struct func *x = a, *y = b;
    return x->addr < y->addr ? -1 : x->addr > y->addr;
}

static void load_funcs(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) die(path);
    size_t cap = 16384;
    funcs = malloc(cap * sizeof *funcs);
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        char *sp = strchr(line, ' ');
        if (!sp) continue;
        *sp = 0;
        char *name = sp + 1;
        name[strcspn(name, "\n")] = 0;
        if (nfuncs == cap) funcs = realloc(funcs, (cap *= 2) * sizeof *funcs);
        funcs[nfuncs].addr = strtoull(line, NULL, 16);
        funcs[nfuncs].name = strdup(name);
        nfuncs++;
    }
    fclose(f);
    qsort(funcs, nfuncs, sizeof *funcs, cmp_addr);
    recorded = calloc(nfuncs, 1);
}

static struct func *find(uint64_t addr) {
    size_t lo = 0, hi = nfuncs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (funcs[mid].addr == addr) return &funcs[mid];
        if (funcs[mid].addr < addr) lo = mid + 1; else hi = mid;
    }
    return NULL;
}

/* Load address of the binary in process pid: the start of its mapping at offset 0. */
static uint64_t load_base(pid_t pid, const char *exe_path) {
    char path[64], line[4096];
    snprintf(path, sizeof path, "/proc/%d/maps", pid);
    FILE *f = fopen(path, "r");
    if (!f) die(path);
    uint64_t base = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long long start, off;
        char name[4096] = "";
        if (sscanf(line, "%llx-%*x %*s %llx %*s %*s %4095s", &start, &off, name) >= 2 &&
            off == 0 && strcmp(name, exe_path) == 0) {
            base = start;
            break;
        }
    }
    fclose(f);
    if (!base) { fprintf(stderr, "first-calls: %s not mapped in %d\n", exe_path, pid); exit(2); }
    return base;
}

/* Per traced process: the binary's load address (0 = not the binary any more). */
struct proc { pid_t pid; uint64_t base; };
static struct proc procs[65536];
static size_t nprocs;

static struct proc *proc_of(pid_t pid) {
    for (size_t i = 0; i < nprocs; i++)
        if (procs[i].pid == pid) return &procs[i];
    if (nprocs == sizeof procs / sizeof *procs) { fprintf(stderr, "too many processes\n"); exit(2); }
    procs[nprocs].pid = pid;
    procs[nprocs].base = 0;
    return &procs[nprocs++];
}

static void arm(pid_t pid, uint64_t base) {
    for (size_t i = 0; i < nfuncs; i++) {
        uint64_t a = base + funcs[i].addr;
        errno = 0;
        long w = ptrace(PTRACE_PEEKTEXT, pid, (void *)a, NULL);
        if (errno) die("PTRACE_PEEKTEXT");
        funcs[i].orig = w;
    }
    /* Words of neighbouring functions overlap: write every breakpoint byte
     * into the current word, not into the word read before. */
    for (size_t i = 0; i < nfuncs; i++) {
        uint64_t a = base + funcs[i].addr;
        errno = 0;
        long w = ptrace(PTRACE_PEEKTEXT, pid, (void *)a, NULL);
        if (errno) die("PTRACE_PEEKTEXT");
        w = (w & ~0xffL) | 0xcc;
        if (ptrace(PTRACE_POKETEXT, pid, (void *)a, (void *)w) < 0) die("PTRACE_POKETEXT");
    }
}

/* The original first byte of function f (read before any breakpoint was set). */
static void disarm_one(pid_t pid, uint64_t base, struct func *f) {
    uint64_t a = base + f->addr;
    errno = 0;
    long w = ptrace(PTRACE_PEEKTEXT, pid, (void *)a, NULL);
    if (errno) die("PTRACE_PEEKTEXT");
    w = (w & ~0xffL) | (f->orig & 0xff);
    if (ptrace(PTRACE_POKETEXT, pid, (void *)a, (void *)w) < 0) die("PTRACE_POKETEXT");
}

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: first-calls EXE FUNCS OUT CMD [ARGS...]\n"); return 2; }
    if (!realpath(argv[1], exe)) die(argv[1]);
    load_funcs(argv[2]);
    out = fopen(argv[3], "a");
    if (!out) die(argv[3]);

    pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) {
        ptrace(PTRACE_TRACEME, 0, NULL, NULL);
        execvp(argv[4], argv + 4);
        _exit(127);
    }
    int status;
    if (waitpid(child, &status, 0) < 0) die("waitpid");
    ptrace(PTRACE_SETOPTIONS, child, NULL,
           (void *)(PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE |
                    PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL));
    if (runs_exe(child)) {
        struct proc *p0 = proc_of(child);
        p0->base = load_base(child, exe);
        arm(child, p0->base);
    }
    ptrace(PTRACE_CONT, child, NULL, NULL);

    int exit_code = 0;
    for (;;) {
        pid_t pid = waitpid(-1, &status, __WALL);
        if (pid < 0) { if (errno == ECHILD) break; die("waitpid"); }
        struct proc *p = proc_of(pid);
        if (WIFEXITED(status) || WIFSIGNALED(status)) {
            if (pid == child) exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            p->pid = -1;
            continue;
        }
        if (!WIFSTOPPED(status)) continue;
        int sig = WSTOPSIG(status), event = status >> 16;
        if (sig == SIGTRAP && event) {
            if (event == PTRACE_EVENT_FORK || event == PTRACE_EVENT_VFORK || event == PTRACE_EVENT_CLONE) {
                unsigned long np;
                ptrace(PTRACE_GETEVENTMSG, pid, NULL, &np);
                proc_of((pid_t)np)->base = p->base; /* same memory image */
            } else if (event == PTRACE_EVENT_EXEC) {
                if (runs_exe(pid)) {
                    p->base = load_base(pid, exe);
                    arm(pid, p->base);
                } else if (p->base) {
                    /* EXE turned into another program (the container's
                     * process): let it go. */
                    ptrace(PTRACE_DETACH, pid, NULL, NULL);
                    p->pid = -1;
                    continue;
                }
            }
            ptrace(PTRACE_CONT, pid, NULL, NULL);
            continue;
        }
        if (sig == SIGTRAP && p->base) {
            struct user_regs_struct regs;
            if (ptrace(PTRACE_GETREGS, pid, NULL, &regs) == 0) {
                struct func *f = find(regs.rip - 1 - p->base);
                if (f) {
                    size_t i = (size_t)(f - funcs);
                    if (!recorded[i]) { recorded[i] = 1; fprintf(out, "%s\n", f->name); }
                    disarm_one(pid, p->base, f);
                    regs.rip -= 1;
                    ptrace(PTRACE_SETREGS, pid, NULL, &regs);
                    ptrace(PTRACE_CONT, pid, NULL, NULL);
                    continue;
                }
            }
        }
        /* A new process's first stop (SIGSTOP), or a real signal: pass it on. */
        ptrace(PTRACE_CONT, pid, NULL, (void *)(long)(sig == SIGSTOP || sig == SIGTRAP ? 0 : sig));
    }
    fclose(out);
    return exit_code;
}
