package loaded

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/ktracer/ktracer/decoder"
)

// StateFile, in the daemon's state directory, keeps the __init names and
// ranges of the modules loaded while the daemon ran, so a restarted daemon
// still names a call into their freed init text: kallsyms forgets them
// when init memory is freed, and the module's file may be gone (insmod of
// a build tree) or rebuilt.
const StateFile = "init-symbols.json"

// Bounds on the state: a real system has a few hundred modules with a few
// __init functions each. What is over is left out, never grown without
// limit.
const (
	maxStateModules = 4096
	maxStateSymbols = 1024 // per module
	maxStateBytes   = 8 << 20
)

const stateVersion = 1

type stateDoc struct {
	Version int           `json:"version"`
	BootID  string        `json:"boot_id"`
	Modules []stateModule `json:"modules"`
}

type stateModule struct {
	Name     string                 `json:"name"`
	Addr     uint64                 `json:"addr"`
	Text     [2]uint64              `json:"text"`
	InitText [2]uint64              `json:"init_text"`
	Data     [3][2]uint64           `json:"data"`
	Symbols  []decoder.ModuleSymbol `json:"symbols"`
}

func toPair(r decoder.Range) [2]uint64   { return [2]uint64{r.Base, r.Size} }
func fromPair(p [2]uint64) decoder.Range { return decoder.Range{Base: p[0], Size: p[1]} }

// WriteState replaces the state file atomically (a temporary file, synced,
// renamed over the old one): a crash leaves the old state or the new one.
func WriteState(dir, bootID string, mods []decoder.LoadedModule) error {
	doc := stateDoc{Version: stateVersion, BootID: bootID}
	for i, m := range mods {
		if i == maxStateModules {
			break
		}
		sm := stateModule{Name: m.Name, Addr: m.Addr, Text: toPair(m.Text), InitText: toPair(m.InitText)}
		for j, d := range m.Data {
			sm.Data[j] = toPair(d)
		}
		sm.Symbols = m.Symbols[:min(len(m.Symbols), maxStateSymbols)]
		doc.Modules = append(doc.Modules, sm)
	}
	b, err := json.Marshal(&doc)
	if err != nil {
		return err
	}
	if len(b) > maxStateBytes {
		return fmt.Errorf("state of %d modules is %d bytes, more than the %d-byte bound: not written", len(doc.Modules), len(b), maxStateBytes)
	}
	f, err := os.CreateTemp(dir, "."+StateFile+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", StateFile, err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, StateFile))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", filepath.Join(dir, StateFile), err)
	}
	return nil
}

// ReadState returns the modules recorded during this boot (bootID). No file
// or another boot's file is no state. A corrupt file is renamed aside
// (StateFile.corrupt-UNIXTIME) and reported in the error, with no modules:
// it must never stop the daemon.
func ReadState(dir, bootID string) ([]decoder.LoadedModule, error) {
	path := filepath.Join(dir, StateFile)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxStateBytes+1))
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var doc stateDoc
	var bad string
	switch {
	case len(b) > maxStateBytes:
		bad = fmt.Sprintf("larger than %d bytes", maxStateBytes)
	default:
		if err := json.Unmarshal(b, &doc); err != nil {
			bad = err.Error()
		} else if doc.Version != stateVersion {
			bad = "version " + strconv.Itoa(doc.Version) + ", want " + strconv.Itoa(stateVersion)
		} else if len(doc.Modules) > maxStateModules {
			bad = strconv.Itoa(len(doc.Modules)) + " modules, more than the bound"
		}
	}
	if bad != "" {
		aside := path + ".corrupt-" + strconv.FormatInt(time.Now().Unix(), 10)
		if err := os.Rename(path, aside); err != nil {
			return nil, fmt.Errorf("%s is corrupt (%s), and cannot be set aside: %w", path, bad, err)
		}
		return nil, fmt.Errorf("%s is corrupt (%s): set aside as %s; starting without it", path, bad, aside)
	}
	if doc.BootID != bootID {
		return nil, nil // an earlier boot's modules are gone
	}
	out := make([]decoder.LoadedModule, 0, len(doc.Modules))
	for _, sm := range doc.Modules {
		m := decoder.LoadedModule{Name: sm.Name, Addr: sm.Addr, Text: fromPair(sm.Text), InitText: fromPair(sm.InitText),
			Symbols: sm.Symbols[:min(len(sm.Symbols), maxStateSymbols)]}
		for j, d := range sm.Data {
			m.Data[j] = fromPair(d)
		}
		out = append(out, m)
	}
	return out, nil
}

// BootID identifies this boot (/proc/sys/kernel/random/boot_id).
func BootID(root string) (string, error) {
	b, err := readSmall(filepath.Join(root, "proc", "sys", "kernel", "random", "boot_id"), 64)
	if err != nil {
		return "", err
	}
	return string(trimSpace(b)), nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}
