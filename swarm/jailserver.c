/* The jail server: the first process (PID 1) of one jail, which runs the jailed program once per request.

   Started by swarm/jailclient.py inside one bubblewrap sandbox (swarm/jailserver.py builds its command line), with
   a SOCK_SEQPACKET unix socket as its stdin. Each request is one message: the data "TIMEOUT_MS\0CWD\0ARGV0\0ARGV1\0
   ...\0" and, as SCM_RIGHTS, three descriptors for the program's stdin, stdout and stderr. The server forks, the
   child execs ARGV0 (an absolute path: no PATH search) in CWD with those three descriptors and nothing else; the
   server waits, kills it at the timeout, then kills and reaps EVERY other process of the jail before it answers
   with one message: "exit N", "signal N" or "timeout" (or "error TEXT" for a malformed request).

   Why it is safe to keep one jail across calls:
   - it is PID 1 of the jail's PID namespace, so every process a call starts (forked, double-forked, setsid'd) is
     its descendant or is re-parented to it: kill(-1, SIGKILL) then waitpid(-1) until ECHILD leaves no process
     of the call behind, so none can touch the next call (e.g. open its pipes through /proc/PID/fd);
   - a process of the jail cannot signal it (PID 1 ignores signals it has no handler for, and it installs none),
     nor ptrace it or open its /proc files (it is not dumpable);
   - the child holds no descriptor of the server's (all are close-on-exec), so it cannot forge a request or an
     answer;
   - the child gets a user and IPC namespace and a session keyring of its own, and the server empties /tmp after
     each call, so what a call leaves in IPC, keyrings or /tmp is not there for the next one.
   Standard C and POSIX, plus prctl(2) (Linux). No interpreter: a shell or Python in the jail would let the jailed
   program delegate its work. */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_REQUEST 65536
#define MAX_ARGS 1024
#define NFDS 3
#define KEYCTL_JOIN_SESSION_KEYRING 1

static int ctl = -1;
static sigset_t original_mask;

static void reply(const char *text) {
    /* The harness may be gone: then there is nobody to answer and the server ends at the next receive. */
    if (send(ctl, text, strlen(text), MSG_NOSIGNAL) < 0 && errno != EPIPE)
        perror("jailserver: send");
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Kill and reap every process of the jail but this one; the status of `pid`, if reaped here, goes to *status. */
static void sweep(pid_t pid, int *status, int *reaped) {
    for (;;) {
        int st;
        kill(-1, SIGKILL); /* every process of the namespace except PID 1 (this one) */
        pid_t w = waitpid(-1, &st, 0);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == ECHILD)
                return;
            perror("jailserver: waitpid");
            return;
        }
        if (w == pid && !*reaped) {
            *status = st;
            *reaped = 1;
        }
    }
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    if (ftw->level > 0)
        remove(path); /* a mount point (of the writable folder, say) stays: EBUSY, and its parents: ENOTEMPTY */
    return 0;
}

/* Wait for `pid` until the deadline: 1 when it ended (status in *status), 0 at the deadline. */
static int wait_until(pid_t pid, double deadline, int *status) {
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    for (;;) {
        pid_t w = waitpid(pid, status, WNOHANG);
        if (w == pid)
            return 1;
        if (w < 0 && errno != EINTR) {
            perror("jailserver: waitpid");
            return 1;
        }
        double left = deadline - now();
        if (left <= 0)
            return 0;
        struct timespec ts = {(time_t)left, (long)((left - (double)(time_t)left) * 1e9)};
        /* SIGCHLD is blocked, so one that came since the waitpid above is pending and ends this wait at once. */
        sigtimedwait(&chld, NULL, &ts);
    }
}

static void child(int fds[NFDS], const char *cwd, char **argv) {
    /* A user and an IPC namespace of the call's own, and a new session keyring: what a call keeps in System V or
       POSIX IPC or in a keyring outlives its processes, and would be there for the next call. Where user
       namespaces cannot be made (a setuid bubblewrap), the call runs without, and the server's log says why. */
    if (unshare(CLONE_NEWUSER | CLONE_NEWIPC) < 0)
        dprintf(2, "jailserver: a call shares the jail's IPC namespace: %s\n", strerror(errno));
    syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL);
    for (int i = 0; i < NFDS; i++)
        if (dup2(fds[i], i) < 0)
            _exit(126);
    sigprocmask(SIG_SETMASK, &original_mask, NULL);
    if (chdir(cwd) < 0) {
        dprintf(2, "jail: cannot enter %s: %s\n", cwd, strerror(errno));
        _exit(126);
    }
    execv(argv[0], argv);
    dprintf(2, "jail: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

static void serve(char *buf, ssize_t n, int fds[NFDS]) {
    char *argv[MAX_ARGS + 1];
    char *fields[MAX_ARGS + 2];
    int count = 0;
    if (n <= 0 || buf[n - 1] != '\0') {
        reply("error request does not end with NUL");
        return;
    }
    for (char *p = buf; p < buf + n && count < MAX_ARGS + 2; p += strlen(p) + 1)
        fields[count++] = p;
    if (count < 3) {
        reply("error request needs a timeout, a folder and a program");
        return;
    }
    char *end;
    long timeout_ms = strtol(fields[0], &end, 10);
    if (*end || timeout_ms <= 0) {
        reply("error bad timeout");
        return;
    }
    if (fields[2][0] != '/') {
        reply("error the program must be an absolute path");
        return;
    }
    for (int i = 2; i < count; i++)
        argv[i - 2] = fields[i];
    argv[count - 2] = NULL;

    double deadline = now() + (double)timeout_ms / 1000.0;
    pid_t pid = fork();
    if (pid < 0) {
        char text[128];
        snprintf(text, sizeof text, "error fork: %s", strerror(errno));
        reply(text);
        return;
    }
    if (pid == 0)
        child(fds, fields[1], argv);
    for (int i = 0; i < NFDS; i++) /* the call's pipes end when the call's processes are gone, not when we are */
        close(fds[i]);
    fds[0] = fds[1] = fds[2] = -1;
    int status = 0, reaped = wait_until(pid, deadline, &status);
    int timed_out = !reaped;
    sweep(pid, &status, &reaped);
    /* Each call gets an empty /tmp, as with a jail per call: nothing in it is left for the next call. */
    nftw("/tmp", remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
    char text[64];
    if (timed_out)
        snprintf(text, sizeof text, "timeout");
    else if (WIFSIGNALED(status))
        snprintf(text, sizeof text, "signal %d", WTERMSIG(status));
    else
        snprintf(text, sizeof text, "exit %d", WEXITSTATUS(status));
    reply(text);
}

int main(void) {
    static char buf[MAX_REQUEST];
    if (getpid() != 1) { /* kill(-1) below would reach every process of the user's */
        fputs("jailserver: must be PID 1 of its own PID namespace (bwrap --unshare-pid --as-pid-1)\n", stderr);
        return 2;
    }
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); /* no process of the jail may ptrace us or open our /proc files */
    ctl = fcntl(0, F_DUPFD_CLOEXEC, 3);
    if (ctl < 0) {
        perror("jailserver: no control socket on stdin");
        return 2;
    }
    close(0);
    if (open("/dev/null", O_RDONLY | O_CLOEXEC) != 0) { /* 0-2 stay taken: every received descriptor is above */
        perror("jailserver: /dev/null");
        return 2;
    }
    fcntl(1, F_SETFD, FD_CLOEXEC);
    fcntl(2, F_SETFD, FD_CLOEXEC);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &original_mask);
    for (;;) {
        int fds[NFDS] = {-1, -1, -1};
        char control[CMSG_SPACE(sizeof(int) * NFDS)];
        struct iovec iov = {buf, sizeof buf};
        struct msghdr msg = {0};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        ssize_t n = recvmsg(ctl, &msg, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) /* the harness closed its end (or is gone): the jail ends, and with PID 1 every process in it */
            return n < 0 ? 1 : 0;
        int got = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                continue;
            int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            int *in = (int *)CMSG_DATA(c);
            for (int i = 0; i < k; i++) {
                if (got < NFDS)
                    fds[got++] = in[i];
                else
                    close(in[i]);
            }
        }
        if (got != NFDS || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
            reply("error a request needs exactly three descriptors and at most 64 KiB");
        else
            serve(buf, n, fds);
        for (int i = 0; i < NFDS; i++)
            if (fds[i] >= 0)
                close(fds[i]);
    }
}
