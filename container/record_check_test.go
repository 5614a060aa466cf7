package container

import (
	"strings"
	"testing"
)

func TestCheckRecord(t *testing.T) {
	id, pod := strings.Repeat("c", 64), strings.Repeat("a", 64)
	bundle := "/run/husk/pods/" + pod + "/containers/" + id
	valid := func() *Container {
		return &Container{ID: id, PodID: pod, Bundle: bundle, CgroupPath: "/kubepods/besteffort/pod1/" + id}
	}
	if err := checkRecord(valid(), id, bundle); err != nil {
		t.Fatalf("valid record refused: %v", err)
	}
	for name, mod := range map[string]func(*Container){
		"ID climbs":                  func(c *Container) { c.ID = "../../x" },
		"ID of another directory":    func(c *Container) { c.ID = strings.Repeat("d", 64) },
		"pod ID climbs":              func(c *Container) { c.PodID = "../../" + pod },
		"pod ID a prefix":            func(c *Container) { c.PodID = "a" },
		"bundle elsewhere":           func(c *Container) { c.Bundle = "/var/lib/kubelet" },
		"bundle climbs":              func(c *Container) { c.Bundle = bundle + "/../../../../etc" },
		"cgroup of another":          func(c *Container) { c.CgroupPath = "/kubepods/besteffort/pod1/" + strings.Repeat("e", 64) },
		"cgroup climbs":              func(c *Container) { c.CgroupPath = "/kubepods/../system.slice/" + id },
		"cgroup relative":            func(c *Container) { c.CgroupPath = "kubepods/" + id },
		"cgroup the parent":          func(c *Container) { c.CgroupPath = "/kubepods" },
		"no cgroup (the whole host)": func(c *Container) { c.CgroupPath = "" },
	} {
		t.Run(name, func(t *testing.T) {
			c := valid()
			mod(c)
			if err := checkRecord(c, id, bundle); err == nil {
				t.Errorf("record %+v accepted", c)
			}
		})
	}
}
