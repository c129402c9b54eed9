package boot

import (
	"encoding/json"
	"io"
	"strconv"
)

// traceEvent is one Chrome trace-event ("JSON trace format"), which
// Perfetto and chrome://tracing open.
type traceEvent struct {
	Name string         `json:"name"`
	Cat  string         `json:"cat,omitempty"`
	Ph   string         `json:"ph"`
	Ts   float64        `json:"ts"` // µs
	Dur  *float64       `json:"dur,omitempty"`
	PID  int            `json:"pid"`
	TID  int            `json:"tid"`
	Args map[string]any `json:"args,omitempty"`
}

// perfettoPID is the one process of the trace, "kernel boot"; each level is
// a thread (a track) in level order, module inits one track per loader.
const perfettoPID = 1

// WritePerfetto writes Chrome trace-event JSON: one complete ("X") slice
// per initcall, on a track per level.
func WritePerfetto(w io.Writer, r *Report) error {
	name := "kernel boot"
	if rel := kernelRelease(r.Kernel); rel != "" {
		name += " (Linux " + rel + ")"
	}
	evs := []traceEvent{{Name: "process_name", Ph: "M", PID: perfettoPID, Args: map[string]any{"name": name}}}
	tracks := map[int]bool{}
	track := func(ic Initcall) int {
		tid := levelRank(ic.Level) + 1
		label := ic.Level
		if ic.Module != "" {
			// Loaders run in parallel: their slices must not share a track.
			tid = 1000 + ic.PID
			label = "module inits (pid " + itoa(ic.PID) + ")"
		}
		if !tracks[tid] {
			tracks[tid] = true
			evs = append(evs,
				traceEvent{Name: "thread_name", Ph: "M", PID: perfettoPID, TID: tid, Args: map[string]any{"name": label}},
				traceEvent{Name: "thread_sort_index", Ph: "M", PID: perfettoPID, TID: tid, Args: map[string]any{"sort_index": tid}})
		}
		return tid
	}
	for _, ic := range r.Initcalls {
		dur := float64(ic.Duration.Nanoseconds()) / 1e3
		args := map[string]any{"level": ic.Level, "seq": ic.Seq, "finished": ic.Finished}
		if ic.Finished {
			args["ret"] = ic.Ret
		}
		if ic.Errno != "" {
			args["errno"] = ic.Errno
		}
		if ic.Module != "" {
			args["module"] = ic.Module
		}
		evs = append(evs, traceEvent{Name: ic.Function, Cat: "initcall", Ph: "X", Ts: float64(ic.Start.Nanoseconds()) / 1e3, Dur: &dur, PID: perfettoPID, TID: track(ic), Args: args})
	}
	enc := json.NewEncoder(w)
	return enc.Encode(struct {
		TraceEvents     []traceEvent `json:"traceEvents"`
		DisplayTimeUnit string       `json:"displayTimeUnit"`
	}{evs, "ms"})
}

func itoa(n int) string { return strconv.Itoa(n) }
