package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/ktracer/ktracer/decoder"
	"github.com/ktracer/ktracer/loaded"
	"github.com/ktracer/ktracer/tracer"
)

// startupAudit recovers the modules loaded before this session (by udev at
// boot, or before a daemon restart) and hands them to the analyzer, oldest
// first; it must run before reading starts, on the goroutine that will
// read. root is the host's root directory ("/", or the daemon's --root in
// a container); state is the daemon's record of this boot, or nil. It
// returns one line saying what was done, for stderr or the log.
func (s *session) startupAudit(root string, state []decoder.LoadedModule) (string, []*decoder.Event, error) {
	t0 := time.Now()
	opts := loaded.Options{Root: root, State: state}
	rel, err := loaded.KernelRelease(root)
	if err != nil {
		return "", nil, fmt.Errorf("startup audit: %w", err)
	}
	opts.KernelRelease = rel
	mem, memErr := tracer.OpenKernelMemory()
	if memErr == nil {
		opts.ReadMemory = mem.Read
	}
	res, err := loaded.Recover(opts)
	if mem != nil {
		mem.Close()
	}
	if err != nil {
		return "", nil, fmt.Errorf("startup audit: %w", err)
	}
	if memErr != nil {
		res.Notes = append(res.Notes, "data not scanned: "+memErr.Error())
	}
	now := monoNow()
	var findings []*decoder.Event
	emit := func() error {
		for j := range s.events {
			s.events[j].MonoNS = now
			if s.events[j].Kind == decoder.KindFinding {
				f := s.events[j]
				findings = append(findings, &f)
			}
		}
		return s.emit(s.events)
	}
	for i := range res.Modules {
		s.events = s.an.AddLoaded(&res.Modules[i], s.events[:0])
		if err := emit(); err != nil {
			return "", nil, err
		}
	}
	// Once all are in: a word pointing into memory a later module took is
	// reported with what it now leads to.
	for i := range res.Modules {
		s.events = s.an.ScanLoaded(&res.Modules[i], s.events[:0])
		res.Modules[i].Memory = nil
		if err := emit(); err != nil {
			return "", nil, err
		}
	}
	st := s.an.AuditStats()
	line := fmt.Sprintf("startup audit: %d modules already loaded, %d with their __init names, %d bytes of data scanned, %d words into former init text, %d dangling-init-pointer, in %s",
		st.Modules, st.InitNamed, res.Scanned, st.InitPointers, st.DanglingFound, time.Since(t0).Round(time.Millisecond))
	for _, n := range res.Notes {
		line += "; " + n
	}
	return line, findings, nil
}

// initState keeps the daemon's init-symbols state file (loaded.StateFile)
// in --state-dir: read once at start, written after each module goes live
// or is freed. Its failures are logged, never fatal.
type initState struct {
	dir, bootID string
	log         *slog.Logger
	warned      bool
}

func newInitState(root, dir string, log *slog.Logger) *initState {
	st := &initState{dir: dir, log: log}
	if dir == "" {
		return st
	}
	id, err := loaded.BootID(root)
	if err != nil {
		log.Warn("no boot id: the __init names of modules loaded now will not survive a restart", "error", err)
		st.dir = ""
	}
	st.bootID = id
	return st
}

func (st *initState) load() []decoder.LoadedModule {
	if st.dir == "" {
		return nil
	}
	mods, err := loaded.ReadState(st.dir, st.bootID)
	if err != nil {
		st.log.Warn("init-symbols state not used", "error", err)
	}
	return mods
}

func (st *initState) save(an *decoder.Analyzer) {
	if st.dir == "" {
		return
	}
	if err := loaded.WriteState(st.dir, st.bootID, an.InitSnapshot()); err != nil && !st.warned {
		st.warned = true
		st.log.Warn("cannot keep the init-symbols state; a restart will not name calls into freed init text of modules loaded now", "error", err)
	}
}
