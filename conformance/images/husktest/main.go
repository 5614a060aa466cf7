// husktest is a small static program put into test images for what
// busybox cannot show or do well.
//
//	husktest syscall keyctl       prints "ok" or the errno name (EPERM under a
//	                              seccomp profile that blocks keyctl)
//	husktest get URL              prints the body of an HTTP GET (Debian's
//	                              busybox wget segfaults)
//	husktest serve ADDR TEXT      answers every HTTP request on ADDR with TEXT
//	husktest proxy LISTEN TARGET  forwards every HTTP request on LISTEN to
//	                              TARGET (host:port)
//	husktest sleep-until NANOS    exits at a given Unix time in nanoseconds
//	                              (the host's clock): tests make a process's
//	                              exit race a kill they time
//
// Run under the name "pause" (as a pod's PID 1 through huskd's
// runtime.pause_path), it is a pause that never reaps its children, and
// exits on SIGTERM or SIGINT: tests use it to show that their zombie checks
// can fail.
package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

const usage = "usage: husktest syscall keyctl | get URL | serve ADDR TEXT | proxy LISTEN TARGET | sleep-until NANOS"

func errname(errno syscall.Errno) string {
	switch errno {
	case 0:
		return "ok"
	case syscall.EPERM:
		return "EPERM"
	case syscall.ENOSYS:
		return "ENOSYS"
	case syscall.EACCES:
		return "EACCES"
	}
	return fmt.Sprintf("errno %d", int(errno))
}

func get(url string) error {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	_, err = io.Copy(os.Stdout, resp.Body)
	return err
}

func syscallCheck(name string) error {
	switch name {
	case "keyctl":
		// KEYCTL_GET_KEYRING_ID (0) of the session keyring (-3), create=1:
		// harmless, and blocked by the runtime's default seccomp profile.
		_, _, errno := syscall.Syscall(syscall.SYS_KEYCTL, 0, ^uintptr(2), 1)
		fmt.Println(errname(errno))
		return nil
	}
	return fmt.Errorf("unknown syscall %s", name)
}

func serve(addr, text string) error {
	return http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, text)
	}))
}

func proxy(listen, target string) error {
	u, err := url.Parse("http://" + target)
	if err != nil {
		return err
	}
	return http.ListenAndServe(listen, httputil.NewSingleHostReverseProxy(u))
}

func sleepUntil(nanos string) error {
	n, err := strconv.ParseInt(nanos, 10, 64)
	if err != nil {
		return err
	}
	time.Sleep(time.Until(time.Unix(0, n)))
	return nil
}

// pause waits for SIGTERM or SIGINT, as husk-pause does, but never waits
// for a child: the Go runtime reaps nothing on its own.
func pause() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}

func main() {
	if filepath.Base(os.Args[0]) == "pause" {
		pause()
		return
	}
	var err error
	switch args := os.Args[1:]; {
	case len(args) == 2 && args[0] == "syscall":
		err = syscallCheck(args[1])
	case len(args) == 2 && args[0] == "get":
		err = get(args[1])
	case len(args) == 3 && args[0] == "serve":
		err = serve(args[1], args[2])
	case len(args) == 3 && args[0] == "proxy":
		err = proxy(args[1], args[2])
	case len(args) == 2 && args[0] == "sleep-until":
		err = sleepUntil(args[1])
	default:
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "husktest:", err)
		os.Exit(1)
	}
}
