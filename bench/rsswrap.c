/* Peak RSS of one child, without the launcher's own memory leaking into the number.
 *
 * ru_maxrss of a child includes the high-water mark of the address space it had before
 * execve: for a vfork/posix_spawn child that is the parent's, for a fork child a copy of it.
 * GNU time (dynamic glibc) and the Rust runner therefore report >= their own RSS (1.6-2 MiB)
 * even for a no-op. This launcher is static and tiny, so what it adds is a few pages.
 *
 * usage: rsswrap PROGRAM [ARGS...]   (stdin/stdout/stderr and environment inherited)
 * prints "maxrss_kib=N status=S" to fd 3 if open, else to stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>

int main(int argc, char **argv, char **envp) {
    if (argc < 2) { fputs("usage: rsswrap PROGRAM [ARGS...]\n", stderr); return 2; }
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); return 2; }
    if (pid == 0) {
        execve(argv[1], argv + 1, envp);
        perror(argv[1]);
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0) {}
    int fd = fcntl(3, F_GETFD) >= 0 ? 3 : 2;
    dprintf(fd, "maxrss_kib=%ld status=%d\n", ru.ru_maxrss,
            WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
