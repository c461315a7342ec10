package cgview

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// IOStat is a cgroup's I/O on one block device.
type IOStat struct {
	Major, Minor          uint32
	ReadBytes, WriteBytes uint64
	Reads, Writes         uint64
}

// IO reads io.stat (v2) or the blkio throttle counters (v1), which count
// every bio whatever the I/O scheduler. Sorted by device.
func (c *Cgroup) IO() ([]IOStat, error) {
	d, err := c.need("blkio")
	if err != nil {
		return nil, err
	}
	if c.V2() {
		b, err := ReadFile(filepath.Join(d, "io.stat"))
		if err != nil {
			return nil, err
		}
		return parseIOStat(b), nil
	}
	stats := map[[2]uint32]*IOStat{}
	for _, f := range []struct {
		name        string
		read, write func(*IOStat) *uint64
	}{
		{"blkio.throttle.io_service_bytes", func(s *IOStat) *uint64 { return &s.ReadBytes }, func(s *IOStat) *uint64 { return &s.WriteBytes }},
		{"blkio.throttle.io_serviced", func(s *IOStat) *uint64 { return &s.Reads }, func(s *IOStat) *uint64 { return &s.Writes }},
	} {
		// _recursive includes the container's own sub-cgroups.
		b, err := ReadFile(filepath.Join(d, f.name+"_recursive"))
		if errors.Is(err, os.ErrNotExist) {
			b, err = ReadFile(filepath.Join(d, f.name))
		}
		if err != nil {
			return nil, err
		}
		parseBlkio(b, stats, f.read, f.write)
	}
	out := make([]IOStat, 0, len(stats))
	for _, s := range stats {
		out = append(out, *s)
	}
	sortIO(out)
	return out, nil
}

// parseIOStat parses v2 lines: "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0".
func parseIOStat(b []byte) []IOStat {
	var out []IOStat
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		s, ok := parseDev(f[0])
		if !ok {
			continue
		}
		for _, kv := range f[1:] {
			k, v, _ := strings.Cut(kv, "=")
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				continue
			}
			switch k {
			case "rbytes":
				s.ReadBytes = n
			case "wbytes":
				s.WriteBytes = n
			case "rios":
				s.Reads = n
			case "wios":
				s.Writes = n
			}
		}
		out = append(out, s)
	}
	sortIO(out)
	return out
}

// parseBlkio parses v1 lines: "8:0 Read 4096", "8:0 Write 0", ..., "Total 4096".
func parseBlkio(b []byte, stats map[[2]uint32]*IOStat, read, write func(*IOStat) *uint64) {
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		f := strings.Fields(string(line))
		if len(f) != 3 {
			continue
		}
		dev, ok := parseDev(f[0])
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(f[2], 10, 64)
		if err != nil {
			continue
		}
		key := [2]uint32{dev.Major, dev.Minor}
		s := stats[key]
		if s == nil {
			s = &dev
			stats[key] = s
		}
		switch f[1] {
		case "Read":
			*read(s) = n
		case "Write":
			*write(s) = n
		}
	}
}

func parseDev(s string) (IOStat, bool) {
	maj, min, ok := strings.Cut(s, ":")
	if !ok {
		return IOStat{}, false
	}
	a, err1 := strconv.ParseUint(maj, 10, 32)
	b, err2 := strconv.ParseUint(min, 10, 32)
	if err1 != nil || err2 != nil {
		return IOStat{}, false
	}
	return IOStat{Major: uint32(a), Minor: uint32(b)}, true
}

func sortIO(s []IOStat) {
	sort.Slice(s, func(i, j int) bool {
		if s[i].Major != s[j].Major {
			return s[i].Major < s[j].Major
		}
		return s[i].Minor < s[j].Minor
	})
}
