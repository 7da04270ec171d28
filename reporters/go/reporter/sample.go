package reporter

import (
	"bytes"
	"math"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// clockTicks is USER_HZ, the unit of the times in /proc/<pid>/stat: 100 on
// every Linux architecture Go supports (sysconf(_SC_CLK_TCK) needs cgo).
const clockTicks = 100

// sampler turns the call counters and the process's CPU time into one Load
// per interval: rates are over the time since the previous sample.
type sampler struct {
	cores          float64
	at             time.Time
	finished, errs uint64
	cpuSeconds     float64
	cpuOK          bool
}

func newSampler(cores float64) *sampler {
	s := &sampler{cores: cores, at: time.Now()}
	s.cpuSeconds, s.cpuOK = processCPUSeconds()
	return s
}

// sample measures since the previous call and starts a new period. The
// counters are read from r; it never blocks.
func (s *sampler) sample(r *Reporter) Load {
	now := time.Now()
	fin, errs := atomic.LoadUint64(&r.finished), atomic.LoadUint64(&r.errs)
	started := atomic.LoadUint64(&r.started)
	var l Load
	if dt := now.Sub(s.at).Seconds(); dt > 0 {
		l.RPS = float64(fin-s.finished) / dt
		l.EPS = float64(errs-s.errs) / dt
		if cpu, ok := processCPUSeconds(); ok && s.cpuOK && cpu >= s.cpuSeconds {
			l.CPUUtilization = (cpu - s.cpuSeconds) / (dt * s.cores)
			s.cpuSeconds = cpu
		}
	}
	if started > fin {
		n := started - fin
		if n > math.MaxUint32 {
			n = math.MaxUint32
		}
		l.InFlight = uint32(n)
	}
	l.MemUtilization = memUtilization()
	l.ApplicationUtilization = math.Float64frombits(atomic.LoadUint64(&r.appUtil))
	s.at, s.finished, s.errs = now, fin, errs
	return l
}

// processCPUSeconds is user + system CPU time of this process so far, from
// fields 14 and 15 of /proc/self/stat (counted after the parenthesised
// command name, which may itself contain spaces or parentheses).
func processCPUSeconds() (float64, bool) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 { // f[0] is field 3 (state): utime is f[11], stime f[12]
		return 0, false
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return float64(ut+st) / clockTicks, true
}

// memUtilization is the resident set over the memory limit: the cgroup v2
// limit when there is one, else the machine's memory. 0 when unknown.
func memUtilization() float64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return 0
	}
	rss := float64(pages) * float64(os.Getpagesize())
	limit := machineMemory()
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if v, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64); err == nil &&
			v > 0 && (limit == 0 || v < limit) {
			limit = v
		}
	}
	if limit <= 0 {
		return 0
	}
	return math.Min(rss/limit, 1)
}

func machineMemory() float64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseFloat(f[1], 64)
			if err == nil {
				return kb * 1024
			}
		}
	}
	return 0
}
