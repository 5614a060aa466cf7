// imagebin stands in for the programs of the upstream images critest
// runs (nginx, httpd, nonewprivs), which cannot be pulled offline. It is
// one static binary, installed under each program's name; what it does
// depends on the name it runs as, and it does only what critest checks.
//
//	nginx [-listen ADDR]   serves 200 on ADDR (default :80), writes
//	                       /var/run/nginx.pid and carries nginx's process
//	                       title "nginx: master process …" in its cmdline
//	httpd                  serves 200 on :80 and logs an httpd line
//	nonewprivs             prints "Effective uid: N"
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

const nginxTitle = "nginx: master process nginx -g daemon off;"

func main() {
	name := filepath.Base(os.Args[0])
	switch {
	case strings.HasPrefix(name, "nginx"):
		nginx()
	case name == "httpd":
		serve(":80", "httpd", func() {
			fmt.Fprintln(os.Stderr, "[mpm_event:notice] AH00489: Apache/2.4.39 (Unix) configured -- resuming normal operations (imagebin httpd)")
		})
	case name == "nonewprivs":
		fmt.Printf("Effective uid: %d\n", os.Geteuid())
	default:
		fmt.Fprintf(os.Stderr, "imagebin: unknown program %q\n", name)
		os.Exit(2)
	}
}

func nginx() {
	// critest reads nginx's title from /proc/1/cmdline, which shows argv
	// as the program was exec'd: re-exec under the title, keeping the pid
	// (which nginx.pid records) and, with the path given to execve, the
	// command name "nginx" that pidof matches.
	if os.Args[0] != nginxTitle {
		self, err := os.Executable()
		if err == nil {
			err = syscall.Exec(self, append([]string{nginxTitle}, os.Args[1:]...), os.Environ())
		}
		fmt.Fprintln(os.Stderr, "nginx: re-exec:", err)
		os.Exit(1)
	}
	fs := flag.NewFlagSet("nginx", flag.ExitOnError)
	listen := fs.String("listen", ":80", "address to serve")
	fs.String("g", "", "nginx's global directives (ignored)")
	_ = fs.Parse(os.Args[1:])
	serve(*listen, "nginx", func() {
		if err := os.WriteFile("/var/run/nginx.pid", []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "nginx:", err)
			os.Exit(1)
		}
	})
}

// serve listens on addr, calls ready, and answers every request with a
// page naming the server.
func serve(addr, server string, ready func()) {
	srv := &http.Server{Addr: addr, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "<html><body><h1>Welcome to %s!</h1></body></html>\n", server)
	})}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, server+":", err)
		os.Exit(1)
	}
	ready()
	fmt.Fprintln(os.Stderr, server+": serving on", addr)
	if err := srv.Serve(l); err != nil {
		fmt.Fprintln(os.Stderr, server+":", err)
		os.Exit(1)
	}
}
