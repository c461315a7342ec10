package ipc

import "time"

// Sockets of the daemons.
const (
	MgrSocket  = RunDir + "/mgr.sock"
	FsSocket   = RunDir + "/fs.sock"
	TrapSocket = RunDir + "/seccomp.sock" // OCI seccomp-agent protocol, not this package's
	// FsStateDir is where sysbox-fs keeps its containers' records (the
	// default: beside its socket).
	FsStateDir = RunDir + "/fs-state"
)

// Manager methods.
const (
	MgrRegisterMethod = "register" // MgrRegister -> MgrRegistration
	MgrStoppedMethod  = "stopped"  // MgrID -> Empty
	MgrRemoveMethod   = "remove"   // MgrID -> Empty
	MgrStatusMethod   = "status"   // Empty -> MgrStatus
)

// MgrRegister asks the manager for a container's id range and host dirs.
// Registering an ID again (a restart) returns what it got before.
type MgrRegister struct {
	ID     string `json:"id"`
	Bundle string `json:"bundle"`
	Rootfs string `json:"rootfs"`
	// IDSize is the number of ids wanted (0: the manager's default).
	IDSize uint32 `json:"idSize,omitempty"`
	// Mounted lists the destinations the spec already mounts: a user's
	// volume wins over a special dir.
	Mounted []string `json:"mounted,omitempty"`
	// NoSpecialDirs: the runtime will not mount the special dirs
	// (SYSBOX_NO_SPECIAL_DIRS), so the manager makes none.
	NoSpecialDirs bool `json:"noSpecialDirs,omitempty"`
}

// MgrMount is a host path the runtime bind-mounts into the container.
type MgrMount struct {
	Source   string `json:"source"`
	Dest     string `json:"dest"`
	ReadOnly bool   `json:"readOnly,omitempty"`
	// Idmap: map the bind into the container's id range, so the container's
	// root owns what the host stores as the range's base.
	Idmap bool `json:"idmap,omitempty"`
}

// MgrRegistration is the manager's answer to MgrRegister.
type MgrRegistration struct {
	UIDBase uint32     `json:"uidBase"`
	GIDBase uint32     `json:"gidBase"`
	Size    uint32     `json:"size"`
	Mounts  []MgrMount `json:"mounts,omitempty"`
}

// MgrID names a container.
type MgrID struct {
	ID string `json:"id"`
}

// Empty is the body of calls that carry nothing.
type Empty struct{}

// MgrContainer is one row of MgrStatus.
type MgrContainer struct {
	ID        string   `json:"id"`
	Bundle    string   `json:"bundle"`
	UIDBase   uint32   `json:"uidBase"`
	Size      uint32   `json:"size"`
	Running   bool     `json:"running"`
	Dirs      []string `json:"dirs,omitempty"`
	DiskBytes int64    `json:"diskBytes"`

	GIDBase uint32    `json:"gidBase"`
	Rootfs  string    `json:"rootfs,omitempty"`
	Created time.Time `json:"created"`
	// Removing: the container is gone and its dirs are being deleted (a
	// removal that failed is retried at every sweep).
	Removing bool `json:"removing,omitempty"`
}

// MgrStatus lists what the manager holds.
type MgrStatus struct {
	Containers []MgrContainer `json:"containers"`

	DataRoot string `json:"dataRoot"`
	// Idmap: special dirs are id-mapped (else chowned to each range).
	Idmap bool `json:"idmap"`
	// IDStart and IDCount are the sysbox range of /etc/subuid and
	// /etc/subgid that container ranges come from; IDsUsed of it are taken.
	IDStart uint64 `json:"idStart"`
	IDCount uint64 `json:"idCount"`
	IDsUsed uint64 `json:"idsUsed"`
	// Orphans are special dirs of no known container (the database was
	// lost): kept for their container to claim, or for an admin to delete.
	Orphans []string `json:"orphans,omitempty"`
}

// Fs daemon methods.
const (
	FsRegisterMethod   = "register"   // FsRegister -> FsRegistration
	FsStartedMethod    = "started"    // FsStarted -> Empty
	FsUnregisterMethod = "unregister" // MgrID -> Empty
)

// FsRegister brings up a container's FUSE view before it is created.
type FsRegister struct {
	ID       string `json:"id"`
	UIDBase  uint32 `json:"uidBase"`
	GIDBase  uint32 `json:"gidBase"`
	Hostname string `json:"hostname,omitempty"`
}

// FsMount is one emulated file or dir to bind over the container's path.
type FsMount struct {
	Source string `json:"source"`
	Dest   string `json:"dest"`
}

// FsRegistration is the fs daemon's answer: what to bind where.
type FsRegistration struct {
	Mounts []FsMount `json:"mounts"`
}

// FsStarted tells the fs daemon the container's init pid once it exists,
// so handlers can enter its namespaces and find its cgroups.
type FsStarted struct {
	ID  string `json:"id"`
	Pid int    `json:"pid"`
	// Cgroups maps a v1 controller (or "" on v2) to the container's
	// cgroup directory on the host.
	Cgroups map[string]string `json:"cgroups"`
}
