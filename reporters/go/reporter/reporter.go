// Package reporter reports a grpc-go backend's load to a lookaside balancer
// (lookaside.v1.LoadReporter/Report), so that the balancer's clients weight
// this backend by what it can take and stop sending to it before it exits.
//
//	r, err := reporter.Start(reporter.Options{
//		Target:  "lookaside.infra.svc:7411",
//		Service: "web",
//		Address: "10.1.2.3:5000", // what clients dial
//	})
//	srv := grpc.NewServer(
//		grpc.ChainUnaryInterceptor(r.UnaryServerInterceptor()),
//		grpc.ChainStreamInterceptor(r.StreamServerInterceptor()))
//	...
//	r.GracefulStop(ctx, srv) // drain, let calls finish, leave the list
//
// The interceptors count calls: completed calls per second (rps), server
// errors per second (eps) and calls in flight. CPU utilisation is the
// process's own (/proc/self/stat) over the cores it may use; memory is its
// resident size over the cgroup limit or the machine's memory. One Report
// stream carries a registration, then a load sample every interval the
// balancer asks for, then a drain before a graceful exit; it is re-opened
// with backoff when it breaks. docs/reporting-protocol.md describes the
// protocol.
package reporter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"math/rand"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	reportMethod    = "/lookaside.v1.LoadReporter/Report"
	defaultInterval = time.Second
)

// Options configure a Reporter. Target, Service and Address are required.
type Options struct {
	Target     string // the balancer, a grpc-go target ("host:port", "dns:///lb:7411")
	Service    string // the service this backend serves (DNS-name syntax)
	Address    string // "ip:port" or "[ipv6]:port" clients should dial
	Zone       string // failure domain; "" for none
	Credential string // per-service credential, when the balancer requires one

	// Options for the balancer connection; nil means plaintext
	// (grpc.WithInsecure()).
	DialOptions []grpc.DialOption
	// Cores the CPU utilisation is relative to; 0 means GOMAXPROCS.
	Cores int
	// Reconnect backoff: doubles from BackoffInitial (default 1 s) to
	// BackoffMax (default 30 s), with jitter; reset once a stream is acked.
	BackoffInitial, BackoffMax time.Duration
	// Logf receives one line per event worth an operator's attention;
	// nil means log.Printf.
	Logf func(format string, args ...interface{})
}

// Info is the reporter's state as the balancer last confirmed it.
type Info struct {
	Registered bool          // the current stream's registration was acked
	Token      string        // this backend's token in server lists
	Interval   time.Duration // report interval the balancer asked for
	Accepted   uint64        // messages the balancer accepted on this stream
	Draining   bool          // the balancer acknowledged a Drain
	LoadsSent  uint64        // load samples sent, all streams
	Streams    int           // Report streams started
	LastError  error         // why the last stream ended, nil if none did
}

// Reporter runs one backend's Report stream. Its methods may be called
// from any goroutine.
type Reporter struct {
	opts Options
	conn *grpc.ClientConn
	smp  *sampler // rates since the previous Load, across streams (run goroutine only)

	started, finished, errs uint64 // atomics, bumped by the interceptors
	appUtil                 uint64 // atomic math.Float64bits

	ctx    context.Context
	cancel context.CancelFunc
	wake   chan struct{} // buffered 1: wishes changed
	done   chan struct{} // closed when the run goroutine returns
	once   sync.Once

	mu        sync.Mutex
	changed   chan struct{} // closed and replaced whenever info changes
	info      Info
	wantDrain bool
	stopping  bool
}

// Start validates opts, dials the balancer (without waiting) and starts the
// Report stream in a goroutine. Stop the Reporter with Stop or GracefulStop.
func Start(opts Options) (*Reporter, error) {
	if opts.Target == "" || opts.Service == "" || opts.Address == "" {
		return nil, errors.New("lookaside reporter: Target, Service and Address are required")
	}
	if opts.BackoffInitial <= 0 {
		opts.BackoffInitial = time.Second
	}
	if opts.BackoffMax < opts.BackoffInitial {
		opts.BackoffMax = 30 * time.Second
	}
	if opts.Logf == nil {
		opts.Logf = log.Printf
	}
	dial := opts.DialOptions
	if dial == nil {
		dial = []grpc.DialOption{grpc.WithInsecure()}
	}
	conn, err := grpc.Dial(opts.Target, dial...)
	if err != nil {
		return nil, fmt.Errorf("lookaside reporter: dial %s: %w", opts.Target, err)
	}
	r := &Reporter{
		opts:    opts,
		conn:    conn,
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		changed: make(chan struct{}),
	}
	cores := float64(opts.Cores)
	if cores <= 0 {
		cores = float64(runtime.GOMAXPROCS(0))
	}
	r.smp = newSampler(cores)
	r.info.Interval = defaultInterval
	r.ctx, r.cancel = context.WithCancel(context.Background())
	go r.run()
	return r, nil
}

// ------------------------------------------------------------ call counting

// CallStarted and CallFinished count one call; the interceptors call them.
// Use them directly for calls that do not pass through grpc-go.
func (r *Reporter) CallStarted() { atomic.AddUint64(&r.started, 1) }

// CallFinished counts a call that ended with code. Codes that say the
// server failed (Unknown, DeadlineExceeded, ResourceExhausted, Aborted,
// Internal, Unavailable, DataLoss) count as errors; the caller's own
// mistakes (InvalidArgument, NotFound, ...) do not.
func (r *Reporter) CallFinished(code codes.Code) {
	if serverError(code) {
		atomic.AddUint64(&r.errs, 1)
	}
	atomic.AddUint64(&r.finished, 1)
}

func serverError(c codes.Code) bool {
	switch c {
	case codes.Unknown, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted,
		codes.Internal, codes.Unavailable, codes.DataLoss:
		return true
	}
	return false
}

// UnaryServerInterceptor counts every unary call of the server it is
// installed on.
func (r *Reporter) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req interface{}, _ *grpc.UnaryServerInfo,
		handler grpc.UnaryHandler) (interface{}, error) {
		r.CallStarted()
		resp, err := handler(ctx, req)
		r.CallFinished(status.Code(err))
		return resp, err
	}
}

// StreamServerInterceptor counts every streaming call as one call.
func (r *Reporter) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv interface{}, ss grpc.ServerStream, _ *grpc.StreamServerInfo,
		handler grpc.StreamHandler) error {
		r.CallStarted()
		err := handler(srv, ss)
		r.CallFinished(status.Code(err))
		return err
	}
}

// SetApplicationUtilization sets an application-defined utilisation (0..1,
// e.g. busy worker slots); when > 0 the balancer uses it instead of CPU.
// 0 clears it.
func (r *Reporter) SetApplicationUtilization(u float64) {
	if math.IsNaN(u) || math.IsInf(u, 0) || u < 0 {
		u = 0
	}
	atomic.StoreUint64(&r.appUtil, math.Float64bits(u))
}

// ------------------------------------------------------------ state, drain, stop

// Info returns the reporter's current state.
func (r *Reporter) Info() Info {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.info
}

// WaitRegistered blocks until the balancer has acked the registration, ctx
// ends or the reporter stops.
func (r *Reporter) WaitRegistered(ctx context.Context) error {
	return r.waitFor(ctx, func(i *Info) bool { return i.Registered })
}

// SetDraining asks the balancer to stop (true) or resume (false) sending
// new traffic to this backend, without waiting.
func (r *Reporter) SetDraining(draining bool) {
	r.mu.Lock()
	if r.stopping {
		draining = true
	}
	if r.wantDrain != draining {
		r.wantDrain = draining
		r.info.Draining = false
	}
	r.mu.Unlock()
	r.poke()
}

// Drain asks the balancer to stop sending new traffic to this backend and
// waits until it has acknowledged that (or ctx ends: ctx.Err()).
func (r *Reporter) Drain(ctx context.Context) error {
	r.SetDraining(true)
	return r.waitFor(ctx, func(i *Info) bool { return i.Draining })
}

// Stop drains (if not drained yet), closes the Report stream (the balancer
// then removes this backend at once) and the balancer connection. If ctx
// ends first the stream is cancelled, which also removes the backend, and
// ctx.Err() is returned. Safe to call more than once.
func (r *Reporter) Stop(ctx context.Context) error {
	r.mu.Lock()
	r.stopping = true
	if !r.wantDrain {
		r.wantDrain = true
		r.info.Draining = false
	}
	r.mu.Unlock()
	r.poke()
	var err error
	select {
	case <-r.done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	r.once.Do(func() {
		r.cancel()
		<-r.done
		r.conn.Close()
	})
	return err
}

// GracefulStop is the exit sequence for a backend: drain (clients stop
// picking it), srv.GracefulStop() (calls in flight finish), then Stop. If
// ctx ends, the remaining steps are cut short (srv.Stop()). Without a
// registered stream (balancer unreachable) there is no drain to wait for.
func (r *Reporter) GracefulStop(ctx context.Context, srv *grpc.Server) error {
	var err error
	if r.Info().Registered {
		err = r.Drain(ctx)
	} else {
		r.SetDraining(true)
		err = errors.New("lookaside reporter: not registered; no drain acknowledged")
	}
	stopped := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-ctx.Done():
		srv.Stop()
		<-stopped
	}
	if e := r.Stop(ctx); err == nil {
		err = e
	}
	return err
}

func (r *Reporter) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// update changes info under the lock and wakes every waiter.
func (r *Reporter) update(f func(i *Info)) {
	r.mu.Lock()
	f(&r.info)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

func (r *Reporter) waitFor(ctx context.Context, ok func(i *Info) bool) error {
	for {
		r.mu.Lock()
		done, ch := ok(&r.info), r.changed
		r.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-r.done:
			return errors.New("lookaside reporter: stopped")
		}
	}
}

func (r *Reporter) wishes() (drain, stopping bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.wantDrain, r.stopping
}

// ------------------------------------------------------------ the stream

func (r *Reporter) run() {
	defer close(r.done)
	delay := r.opts.BackoffInitial
	for {
		acked, err := r.stream()
		r.update(func(i *Info) {
			i.Registered = false
			i.Accepted = 0
			i.LastError = err
		})
		if _, stopping := r.wishes(); stopping || r.ctx.Err() != nil {
			return
		}
		if acked {
			delay = r.opts.BackoffInitial
			r.opts.Logf("lookaside reporter: %s %s: report stream ended (%v); reconnecting",
				r.opts.Service, r.opts.Address, err)
		} else if status.Code(err) != codes.Unavailable {
			r.opts.Logf("lookaside reporter: %s %s: balancer refused the report stream: %v",
				r.opts.Service, r.opts.Address, err)
		}
		// Full jitter in [delay/2, delay): reporters restarted together do
		// not reconnect together.
		wait := delay/2 + time.Duration(rand.Int63n(int64(delay/2)+1))
		if delay *= 2; delay > r.opts.BackoffMax {
			delay = r.opts.BackoffMax
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-r.wake: // Stop while disconnected: nothing to drain
		case <-r.ctx.Done():
		}
		t.Stop()
	}
}

// stream runs one Report stream until it ends. It returns whether the
// balancer acked it, and nil after a clean close (Stop).
func (r *Reporter) stream() (acked bool, err error) {
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	desc := &grpc.StreamDesc{StreamName: "Report", ServerStreams: true, ClientStreams: true}
	s, err := r.conn.NewStream(ctx, desc, reportMethod, grpc.ForceCodec(rawCodec{}))
	if err != nil {
		return false, err
	}
	r.update(func(i *Info) { i.Streams++ })

	acks := make(chan Ack)
	ended := make(chan error, 1)
	go func() {
		for {
			var b []byte
			if err := s.RecvMsg(&b); err != nil {
				if err == io.EOF {
					err = nil // the balancer closed the stream with OK
				}
				ended <- err
				return
			}
			a, err := decodeAck(b)
			if err != nil {
				ended <- err
				return
			}
			select {
			case acks <- a:
			case <-ctx.Done():
				ended <- ctx.Err()
				return
			}
		}
	}()
	// A failed send means the stream is over; its status comes from Recv.
	finish := func() error {
		cancelled := ctx.Done()
		select {
		case err := <-ended:
			return err
		case <-cancelled:
			return ctx.Err()
		}
	}
	if s.SendMsg(encodeRegister(r.opts.Service, r.opts.Address, r.opts.Zone,
		r.opts.Credential)) != nil {
		return false, finish()
	}

	var (
		sent         uint64 = 1 // messages sent on this stream; the registration is 1
		saidDrain    bool       // what this stream last said
		drainOrdinal uint64     // which message that was
		halfClosed   bool
		loadDue      bool
		interval     = defaultInterval
		timer        = time.NewTimer(time.Hour)
	)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case a := <-acks:
			if a.ReportIntervalMs > 0 {
				interval = time.Duration(a.ReportIntervalMs) * time.Millisecond
			}
			if !acked {
				acked, loadDue = true, true // first load right after the first ack
			}
			r.update(func(i *Info) {
				i.Registered = true
				i.Token = a.Token
				i.Interval = interval
				i.Accepted = a.Accepted
				if drainOrdinal != 0 && a.Accepted >= drainOrdinal {
					i.Draining = saidDrain
				}
			})
		case err := <-ended:
			if err == nil && !halfClosed {
				err = errors.New("the balancer closed the report stream")
			}
			return acked, err
		case <-timer.C:
			loadDue = true
		case <-r.wake:
		case <-r.ctx.Done():
			return acked, r.ctx.Err()
		}
		if !acked || halfClosed {
			continue
		}
		wantDrain, stopping := r.wishes()
		switch {
		case wantDrain != saidDrain:
			if s.SendMsg(encodeDrain(wantDrain)) != nil {
				return acked, finish()
			}
			sent++
			saidDrain, drainOrdinal = wantDrain, sent
		case stopping:
			if r.Info().Draining {
				// Drain acknowledged: half-close; the balancer removes us
				// and ends the stream with OK.
				_ = s.CloseSend()
				halfClosed = true
			}
		case loadDue:
			l := r.smp.sample(r)
			if s.SendMsg(encodeLoad(l)) != nil {
				return acked, finish()
			}
			sent++
			loadDue = false
			timer.Reset(interval)
			r.update(func(i *Info) { i.LoadsSent++ })
		}
	}
}
