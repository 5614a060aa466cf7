/*
 * floor measures what no runtime can go below on this machine: the process
 * starts a pod and an exec are made of, with nothing else around them.
 *
 *   floor fork N        fork + exec /bin/true + wait
 *   floor spawn N       clone into new mount, PID, network, IPC and UTS
 *                       namespaces + exec /bin/true + wait (a pause's start)
 *   floor exec PID N    fork, setns into PID's IPC, UTS, network, PID and
 *                       mount namespaces, fork (the PID namespace holds only
 *                       children), exec /bin/true inside + wait (an exec, or
 *                       a container joining its pod)
 *
 * It prints "<mode> median_ms p90_ms" over N rounds.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char *const true_argv[] = {"true", NULL};

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int wait_ok(pid_t pid)
{
	int st;
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return 0;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void enter_and_run(int target)
{
	static const char *kinds[] = {"ipc", "uts", "net", "pid", "mnt"};
	int fds[5];
	char path[64];
	/* All opened first: /proc is the container's once in its mounts. */
	for (int i = 0; i < 5; i++) {
		snprintf(path, sizeof path, "/proc/%d/ns/%s", target, kinds[i]);
		if ((fds[i] = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			_exit(120);
	}
	for (int i = 0; i < 5; i++)
		if (setns(fds[i], 0) < 0)
			_exit(121);
	pid_t c = fork();
	if (c == 0) {
		execv("/bin/true", true_argv);
		_exit(127);
	}
	_exit(wait_ok(c) ? 0 : 122);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: floor fork|spawn N | floor exec PID N\n");
		return 2;
	}
	const char *mode = argv[1];
	int target = 0, n;
	if (strcmp(mode, "exec") == 0) {
		if (argc < 4)
			return 2;
		target = atoi(argv[2]);
		n = atoi(argv[3]);
	} else {
		n = atoi(argv[2]);
	}
	if (n <= 0)
		return 2;
	double *d = calloc(n, sizeof *d);
	if (!d)
		return 1;
	for (int i = 0; i < n; i++) {
		double t0 = now_ms();
		pid_t pid;
		if (strcmp(mode, "fork") == 0) {
			pid = fork();
			if (pid == 0) {
				execv("/bin/true", true_argv);
				_exit(127);
			}
		} else if (strcmp(mode, "spawn") == 0) {
			pid = syscall(SYS_clone, CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | SIGCHLD, 0, 0, 0, 0);
			if (pid == 0) {
				execv("/bin/true", true_argv);
				_exit(127);
			}
		} else if (strcmp(mode, "exec") == 0) {
			pid = fork();
			if (pid == 0)
				enter_and_run(target);
		} else {
			fprintf(stderr, "floor: unknown mode %s\n", mode);
			return 2;
		}
		if (!wait_ok(pid)) {
			fprintf(stderr, "floor: %s round %d failed\n", mode, i);
			return 1;
		}
		d[i] = now_ms() - t0;
	}
	qsort(d, n, sizeof *d, cmp);
	printf("%s %.3f %.3f\n", mode, d[n / 2], d[(int)(0.9 * (n - 1) + 0.5)]);
	return 0;
}
