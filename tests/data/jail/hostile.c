/* A jailed program that tries what a hostile engine would (tests/test_jail.py): one mode per first argument. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <unistd.h>

/* Forever: append to `beat`, and write into the stdout of every other process of the jail. */
static void haunt(const char *beat) {
    for (;;) {
        int fd = open(beat, O_WRONLY | O_APPEND | O_CREAT, 0644);
        if (fd >= 0) {
            (void)write(fd, "x", 1);
            close(fd);
        }
        DIR *proc = opendir("/proc");
        struct dirent *e;
        while (proc && (e = readdir(proc))) {
            int pid = atoi(e->d_name);
            if (pid <= 0 || pid == getpid())
                continue;
            char path[64];
            snprintf(path, sizeof path, "/proc/%d/fd/1", pid);
            int out = open(path, O_WRONLY);
            if (out >= 0) {
                (void)write(out, "STRAY\n", 6);
                close(out);
            }
        }
        if (proc)
            closedir(proc);
        usleep(10000);
    }
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "echo";
    const char *arg = argc > 2 ? argv[2] : "";
    if (!strcmp(mode, "echo")) {
        char buf[4096];
        ssize_t n;
        while ((n = read(0, buf, sizeof buf)) > 0)
            (void)write(1, buf, (size_t)n);
        return 0;
    }
    if (!strcmp(mode, "exec")) {
        execl(arg, arg, "-c", "print(1)", (char *)NULL);
        puts("refused");
        return 1;
    }
    if (!strcmp(mode, "open")) {
        char c;
        int fd = open(arg, O_RDONLY);
        puts(fd >= 0 && read(fd, &c, 1) == 1 ? "read" : "refused");
        return 0;
    }
    if (!strcmp(mode, "fds")) { /* open every descriptor of process `arg` through /proc */
        char dir[64], path[128];
        snprintf(dir, sizeof dir, "/proc/%s/fd", arg);
        DIR *d = opendir(dir);
        struct dirent *e;
        int opened = 0;
        while (d && (e = readdir(d))) {
            if (e->d_name[0] == '.')
                continue;
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            int fd = open(path, O_WRONLY);
            if (fd >= 0) {
                opened++;
                close(fd);
            }
        }
        puts(opened ? "opened" : "refused");
        return 0;
    }
    if (!strcmp(mode, "kill")) { /* signal every process it can see, the server (PID 1) first */
        kill(1, SIGKILL);
        kill(1, SIGTERM);
        kill(-1, SIGKILL);
        puts("still here");
        return 0;
    }
    if (!strcmp(mode, "connect")) {
        struct sockaddr_in a = {0};
        a.sin_family = AF_INET;
        a.sin_port = htons((unsigned short)atoi(arg));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int s = socket(AF_INET, SOCK_STREAM, 0);
        puts(s >= 0 && connect(s, (struct sockaddr *)&a, sizeof a) == 0 ? "connected" : "refused");
        return 0;
    }
    if (!strcmp(mode, "stray")) { /* leave a process behind, out of this call's group and session */
        if (fork() == 0) {
            setsid();
            if (fork() == 0)
                haunt(arg);
            _exit(0);
        }
        puts("left one behind");
        return 0;
    }
    if (!strcmp(mode, "wait")) { /* a call that lasts long enough for a stray to reach it */
        usleep(300000);
        puts("quiet");
        return 0;
    }
    if (!strcmp(mode, "ipc")) { /* a System V segment an earlier call left, then leave one */
        if (shmget(0x5a5a, 16, 0600) >= 0) {
            puts("found");
            return 0;
        }
        puts(shmget(0x5a5a, 16, IPC_CREAT | 0600) >= 0 ? "created" : "refused");
        return 0;
    }
    if (!strcmp(mode, "env")) { /* the judge's secret, if the jail hands it on */
        const char *seed = getenv("SWARM_JUDGE_SEED");
        puts(seed ? seed : "none");
        return 0;
    }
    if (!strcmp(mode, "sleep"))
        for (;;)
            pause();
    if (!strcmp(mode, "tmp")) { /* what an earlier call left in /tmp, then leave something there */
        puts(access("/tmp/left", F_OK) == 0 ? "found" : "empty");
        close(open("/tmp/left", O_WRONLY | O_CREAT, 0644));
        return 0;
    }
    return 3;
}
