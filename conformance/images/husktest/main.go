// husktest is a small static program put into test images for what
// busybox cannot show: the outcome of one syscall, as a word.
//
//	husktest syscall keyctl   prints "ok" or the errno name (EPERM under a
//	                          seccomp profile that blocks keyctl)
//	husktest get URL          prints the body of an HTTP GET (Debian's
//	                          busybox wget segfaults)
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"syscall"
	"time"
)

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

func main() {
	if len(os.Args) == 3 && os.Args[1] == "get" {
		if err := get(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) != 3 || os.Args[1] != "syscall" {
		fmt.Fprintln(os.Stderr, "usage: husktest syscall keyctl | husktest get URL")
		os.Exit(2)
	}
	switch os.Args[2] {
	case "keyctl":
		// KEYCTL_GET_KEYRING_ID (0) of the session keyring (-3), create=1:
		// harmless, and blocked by the runtime's default seccomp profile.
		_, _, errno := syscall.Syscall(syscall.SYS_KEYCTL, 0, ^uintptr(2), 1)
		fmt.Println(errname(errno))
	default:
		fmt.Fprintln(os.Stderr, "unknown syscall", os.Args[2])
		os.Exit(2)
	}
}
