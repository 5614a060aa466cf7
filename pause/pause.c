/*
 * husk-pause: PID 1 of a husk pod.
 *
 * It holds the pod's namespaces open and, when the pod shares one PID
 * namespace, reaps every orphan that is re-parented to it. It must stay
 * tiny: one runs per pod, so its memory is paid once per pod on the node.
 *
 * A namespace's PID 1 receives only the signals it installs handlers for;
 * SIGKILL from outside the namespace is the only exception. So SIGINT and
 * SIGTERM get handlers that exit 0, and SIGCHLD gets a reaper.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef VERSION
#define VERSION "unknown"
#endif

static void on_term(int sig) {
	(void)sig;
	_exit(0);
}

/*
 * Signals coalesce: many children can exit while one SIGCHLD is pending,
 * so a single delivery must reap everything that has exited.
 */
static void on_child(int sig) {
	int saved = errno;
	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	errno = saved;
}

static int install(int sig, void (*fn)(int), int flags) {
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = fn;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	return sigaction(sig, &sa, NULL);
}

int main(int argc, char **argv) {
	int i;
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-v") == 0) {
			printf("husk-pause %s\n", VERSION);
			return 0;
		}
	}

	/* Useful for tests and debugging, so not running as PID 1 is no error. */
	if (getpid() != 1)
		fprintf(stderr, "husk-pause: warning: not running as PID 1 (pid %d)\n", (int)getpid());

	if (install(SIGINT, on_term, 0) < 0 || install(SIGTERM, on_term, 0) < 0) {
		perror("husk-pause: sigaction");
		return 1;
	}
	/* SA_NOCLDSTOP: a stopped child is not an exited one. */
	if (install(SIGCHLD, on_child, SA_NOCLDSTOP | SA_RESTART) < 0) {
		perror("husk-pause: sigaction");
		return 2;
	}
	/* Children that exited before the handler was installed. */
	on_child(SIGCHLD);

	for (;;)
		pause();
	return 42; /* unreachable */
}
