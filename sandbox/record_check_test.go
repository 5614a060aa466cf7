package sandbox

import (
	"strings"
	"testing"

	"github.com/huskrt/husk/shim/shimapi"
)

func TestCheckRecord(t *testing.T) {
	id := strings.Repeat("a", 64)
	state := "/run/husk/pods/" + id
	valid := func() *Sandbox {
		return &Sandbox{
			ID: id, CgroupPath: "/kubepods/besteffort/pod1/" + id, ShmPath: state + "/shm",
			Namespaces: map[string]string{NSNet: state + "/ns/net", NSUser: state + "/ns/user"},
		}
	}
	if err := checkRecord(valid(), id, state); err != nil {
		t.Fatalf("valid record refused: %v", err)
	}
	hostIPC := valid()
	hostIPC.ShmPath, hostIPC.Namespaces = "", nil
	if err := checkRecord(hostIPC, id, state); err != nil {
		t.Fatalf("record of a pod with the host's namespaces refused: %v", err)
	}
	own := valid()
	own.PodCgroup, own.CgroupPath = "/husk/pod"+id, "/husk/pod"+id+"/"+id
	if err := checkRecord(own, id, state); err != nil {
		t.Fatalf("record of a pod in its own cgroup refused: %v", err)
	}
	for name, mod := range map[string]func(*Sandbox){
		"pod cgroup of another": func(s *Sandbox) {
			s.PodCgroup, s.CgroupPath = "/husk/pod"+strings.Repeat("b", 64), "/husk/pod"+strings.Repeat("b", 64)+"/"+id
		},
		"pod cgroup climbs":                 func(s *Sandbox) { s.PodCgroup = "/husk/../pod" + id },
		"pod cgroup not the pause's parent": func(s *Sandbox) { s.PodCgroup = "/husk/pod" + id },

		"ID of another directory": func(s *Sandbox) { s.ID = strings.Repeat("b", 64) },
		"ID climbs":               func(s *Sandbox) { s.ID = "../../x" },
		"cgroup of another":       func(s *Sandbox) { s.CgroupPath = "/kubepods/besteffort/pod1/" + strings.Repeat("b", 64) },
		"cgroup climbs":           func(s *Sandbox) { s.CgroupPath = "/kubepods/../../" + id },
		"cgroup the root":         func(s *Sandbox) { s.CgroupPath = "/" },
		"shm elsewhere":           func(s *Sandbox) { s.ShmPath = "/dev/shm" },
		"pin elsewhere":           func(s *Sandbox) { s.Namespaces[NSNet] = "/var/run/netns/other" },
		"pin climbs":              func(s *Sandbox) { s.Namespaces[NSNet] = state + "/ns/../../../../proc/1/ns/net" },
		"pin of another kind":     func(s *Sandbox) { s.Namespaces[NSNet] = state + "/ns/ipc" },
	} {
		t.Run(name, func(t *testing.T) {
			s := valid()
			mod(s)
			if err := checkRecord(s, id, state); err == nil {
				t.Errorf("record %+v accepted", s)
			}
		})
	}
}

func TestValidContainers(t *testing.T) {
	good := strings.Repeat("c", 64)
	snap := shimapi.Snapshot{Seq: 3, Containers: []shimapi.ContainerState{
		{ID: "../../husktest-victim"}, {ID: good}, {ID: ""}, {ID: strings.Repeat("C", 64)},
	}}
	got := validContainers("pod", snap)
	if got.Seq != 3 || len(got.Containers) != 1 || got.Containers[0].ID != good {
		t.Errorf("validContainers kept %+v", got.Containers)
	}
	if len(snap.Containers) != 4 || snap.Containers[1].ID != good {
		t.Errorf("the snapshot passed in was changed: %+v", snap.Containers)
	}
}
