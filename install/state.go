package install

import (
	"encoding/json"
	"fmt"
)

// defaultStateFile is where install records what it did, for uninstall and
// for the next install. Not under the data root: --purge removes that.
const defaultStateFile = "/etc/sysbox/install.json"

// state is everything install changed on the host, exactly: uninstall takes
// out only this, and a second install starts from it so that installing
// twice leaves the host as installing once.
type state struct {
	Version  int    `json:"version"`
	Prefix   string `json:"prefix"`
	DataRoot string `json:"dataRoot"`
	// Binary is the file install copied itself to; empty when the running
	// binary was already in place (install.sh put it there).
	Binary string   `json:"binary,omitempty"`
	Links  []string `json:"links,omitempty"`
	// Dirs are directories install created for them (a new prefix),
	// removed at uninstall when empty.
	Dirs []string `json:"dirs,omitempty"`
	// DataRootCreated: install made the data root (uninstall --purge
	// removes it either way).
	DataRootCreated bool `json:"dataRootCreated,omitempty"`
	UserCreated     bool `json:"userCreated,omitempty"`
	// Sysctl holds the values install raised, with what they were.
	Sysctl map[string]sysctlRaise `json:"sysctl,omitempty"`
	// Units are the systemd units install wrote; Daemons is how it started
	// the daemons: "systemd", "direct" or "" (not started).
	Units   []string `json:"units,omitempty"`
	Daemons string   `json:"daemons,omitempty"`
	// The engines' config files install added the runtime to.
	DockerConfig     string `json:"dockerConfig,omitempty"`
	DockerPidFile    string `json:"dockerPidFile,omitempty"`
	ContainerdConfig string `json:"containerdConfig,omitempty"`
	PodmanConfig     string `json:"podmanConfig,omitempty"`
	// Files are the files install wrote or edited, by path.
	Files map[string]*fileRecord `json:"files,omitempty"`
}

type sysctlRaise struct {
	Old int64 `json:"old"`
	New int64 `json:"new"`
}

// Kinds of file records.
const (
	kindJSON  = "json"  // keys merged into a JSON object
	kindTOML  = "toml"  // text edits of a TOML file
	kindLines = "lines" // whole lines appended (/etc/subuid)
	kindWhole = "whole" // a file install owns whole (units, sysctl drop-in)
)

// fileRecord is what install did to one file.
type fileRecord struct {
	Kind string `json:"kind"`
	// Existed: the file was there before install touched it. Backup then
	// holds its bytes as they were without sysbox's changes.
	Existed bool   `json:"existed"`
	Backup  string `json:"backup,omitempty"`
	// SHA256 is the file's content as install left it: a file that still
	// has it is untouched since, and comes back from the backup byte-exact.
	SHA256 string       `json:"sha256"`
	JSON   []jsonChange `json:"json,omitempty"`
	TOML   []tomlEdit   `json:"toml,omitempty"`
	Lines  []string     `json:"lines,omitempty"`
	// Created is the text install put in a TOML file it created besides
	// its own block (containerd's version line).
	Created string `json:"created,omitempty"`
}

const stateVersion = 1

func (in *installer) loadState() error {
	b, ok, err := in.h.readFile(in.stateFile)
	if err != nil {
		return err
	}
	in.st = &state{Version: stateVersion, Files: map[string]*fileRecord{}}
	in.hadState = ok
	if !ok {
		return nil
	}
	if err := json.Unmarshal(b, in.st); err != nil {
		return fmt.Errorf("%s: %w (move it away to start afresh)", in.stateFile, err)
	}
	if in.st.Version != stateVersion {
		return fmt.Errorf("%s: state version %d, this sysbox knows %d", in.stateFile, in.st.Version, stateVersion)
	}
	if in.st.Files == nil {
		in.st.Files = map[string]*fileRecord{}
	}
	return nil
}

// saveState writes the record after every step, so a failed install can
// still be uninstalled. A dry run shows it once, at the end.
func (in *installer) saveState(final bool) error {
	if in.h.dry && !final {
		return nil
	}
	b, err := json.MarshalIndent(in.st, "", "  ")
	if err != nil {
		return err
	}
	quiet := silentWrite
	if in.h.dry {
		quiet = ""
	}
	_, err = in.h.writeFile(in.stateFile, append(b, '\n'), 0o600, quiet)
	return err
}
