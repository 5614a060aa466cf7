package container

import (
	"fmt"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/huskrt/husk/internal/errdefs"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// defaultPathEnv is what containerd and Docker give an image without PATH:
// without one, execvp-style lookups in the container find nothing.
const defaultPathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// processArgs follows Docker's rules, which images are built against: the
// config's command replaces the image's entrypoint and cmd; the config's
// args alone replace only the cmd.
func processArgs(cfg *runtime.ContainerConfig, img ImageConfig) ([]string, error) {
	var args []string
	if len(cfg.GetCommand()) > 0 {
		args = append(append(args, cfg.GetCommand()...), cfg.GetArgs()...)
	} else {
		// An entrypoint of [""] is how a build resets its base image's.
		if !(len(img.Entrypoint) == 1 && img.Entrypoint[0] == "") {
			args = append(args, img.Entrypoint...)
		}
		if len(cfg.GetArgs()) > 0 {
			args = append(args, cfg.GetArgs()...)
		} else {
			args = append(args, img.Cmd...)
		}
	}
	if len(args) == 0 {
		return nil, errdefs.InvalidArgument("config.command", "no command: neither the config nor the image gives one")
	}
	if args[0] == "" {
		return nil, errdefs.InvalidArgument("config.command", "the executable is empty")
	}
	return args, nil
}

// processEnv starts from the image's environment and lets the config's
// variables replace same-named ones in place, so the order an image author
// chose stays.
func processEnv(image []string, envs []*runtime.KeyValue) ([]string, error) {
	env := slices.Clone(image)
	index := make(map[string]int, len(env)+len(envs))
	for i, e := range env {
		k, _, _ := strings.Cut(e, "=")
		// getenv returns the first of duplicates: that is the one to replace.
		if _, ok := index[k]; !ok {
			index[k] = i
		}
	}
	for i, kv := range envs {
		k := kv.GetKey()
		if k == "" {
			return nil, errdefs.InvalidArgument(fmt.Sprintf("config.envs[%d].key", i), "must not be empty")
		}
		e := k + "=" + string(kv.GetValue())
		if j, ok := index[k]; ok {
			env[j] = e
			continue
		}
		index[k] = len(env)
		env = append(env, e)
	}
	if _, ok := index["PATH"]; !ok {
		env = append([]string{defaultPathEnv}, env...)
	}
	return env, nil
}

// workingDir prefers the config's, then the image's, then "/".
func workingDir(config, image string) (string, error) {
	switch {
	case config != "":
		if !path.IsAbs(config) {
			return "", errdefs.InvalidArgument("config.working_dir", "%q is not an absolute path", config)
		}
		return config, nil
	case image != "":
		// Docker resolves a relative WORKDIR against "/"; images built by
		// other tools may carry one, and are still runnable.
		return path.Join("/", image), nil
	}
	return "/", nil
}

// resolveUser picks the process's uid, gid and groups: run_as_username,
// else run_as_user, else the image's USER, else root; run_as_group replaces
// the gid.
func resolveUser(sc *runtime.LinuxContainerSecurityContext, imageUser string, db UserDB) (User, error) {
	if sc.GetRunAsGroup() != nil && sc.GetRunAsUser() == nil && sc.GetRunAsUsername() == "" {
		// Kubernetes validates this too; critest checks the runtime does.
		return User{}, errdefs.InvalidArgument(fieldSC+".run_as_group", "is set without run_as_user or run_as_username")
	}
	uid, gid, name, err := primaryIdentity(sc, imageUser, db)
	if err != nil {
		return User{}, err
	}
	if g := sc.GetRunAsGroup(); g != nil {
		if !validID(g.GetValue()) {
			return User{}, errdefs.InvalidArgument(fieldSC+".run_as_group", "%d is not a valid gid", g.GetValue())
		}
		gid = g.GetValue()
	}
	groups, err := supplementalGroups(sc, gid, name, db)
	if err != nil {
		return User{}, err
	}
	return User{UID: uid, GID: gid, SupplementalGroups: groups}, nil
}

// primaryIdentity returns the uid, its gid, and the user name whose
// /etc/group memberships count ("" when the uid has no passwd entry).
func primaryIdentity(sc *runtime.LinuxContainerSecurityContext, imageUser string, db UserDB) (uid, gid int64, name string, err error) {
	switch {
	case sc.GetRunAsUsername() != "":
		n := sc.GetRunAsUsername()
		uid, gid, name, ok := db.LookupUser(n)
		if !ok {
			return 0, 0, "", errdefs.InvalidArgument(fieldSC+".run_as_username", "user %q is not in the image's /etc/passwd", n)
		}
		return uid, gid, name, nil
	case sc.GetRunAsUser() != nil:
		v := sc.GetRunAsUser().GetValue()
		if !validID(v) {
			return 0, 0, "", errdefs.InvalidArgument(fieldSC+".run_as_user", "%d is not a valid uid", v)
		}
		uid, gid, name := byUID(v, db)
		return uid, gid, name, nil
	}
	return imageIdentity(imageUser, db)
}

// byUID is a numeric user: any uid is allowed, and one without a passwd
// entry runs with gid 0 as Docker and containerd do.
func byUID(uid int64, db UserDB) (int64, int64, string) {
	_, gid, name, ok := db.LookupUser(strconv.FormatInt(uid, 10))
	if !ok {
		return uid, 0, ""
	}
	return uid, gid, name
}

// imageIdentity reads the image's USER: "uid", "uid:gid", "name",
// "name:group", with group a name or a gid; "" is root.
func imageIdentity(s string, db UserDB) (uid, gid int64, name string, err error) {
	if s == "" {
		uid, gid, name := byUID(0, db)
		return uid, gid, name, nil
	}
	u, g, hasGroup := strings.Cut(s, ":")
	if id, ok := parseID(u); ok && id < math.MaxUint32 {
		uid, gid, name = byUID(id, db)
	} else {
		var found bool
		uid, gid, name, found = db.LookupUser(u)
		if !found {
			return 0, 0, "", errdefs.InvalidArgument("config.image", "the image's user %q: no user %q in the image's /etc/passwd", s, u)
		}
	}
	if hasGroup {
		if id, ok := parseID(g); ok && id < math.MaxUint32 {
			gid = id
		} else {
			var found bool
			if gid, found = db.LookupGroup(g); !found {
				return 0, 0, "", errdefs.InvalidArgument("config.image", "the image's user %q: no group %q in the image's /etc/group", s, g)
			}
		}
	}
	return uid, gid, name, nil
}

// supplementalGroups is what the process's getgroups returns and what
// ContainerStatus.user reports: the primary gid (critest expects it listed),
// the image's groups naming the user unless the policy is Strict, and the
// config's supplemental_groups; sorted, each once.
func supplementalGroups(sc *runtime.LinuxContainerSecurityContext, gid int64, name string, db UserDB) ([]int64, error) {
	groups := []int64{gid}
	switch p := sc.GetSupplementalGroupsPolicy(); p {
	case runtime.SupplementalGroupsPolicy_Merge:
		if name != "" {
			groups = append(groups, db.GroupsOf(name)...)
		}
	case runtime.SupplementalGroupsPolicy_Strict:
	default:
		return nil, errdefs.InvalidArgument(fieldSC+".supplemental_groups_policy", "unknown policy %d", p)
	}
	for i, g := range sc.GetSupplementalGroups() {
		if !validID(g) {
			return nil, errdefs.InvalidArgument(fmt.Sprintf("%s.supplemental_groups[%d]", fieldSC, i), "%d is not a valid gid", g)
		}
		groups = append(groups, g)
	}
	slices.Sort(groups)
	return slices.Compact(groups), nil
}

// validID excludes negatives and (uid_t)-1, which setuid reads as "leave
// unchanged".
func validID(id int64) bool {
	return id >= 0 && id < math.MaxUint32
}
