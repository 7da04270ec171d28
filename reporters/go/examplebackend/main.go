// Command examplebackend is a grpc-go backend that reports its load to a
// lookaside balancer with package lookaside/reporter. It serves
// grpc.health.v1.Health/Check with behaviours chosen by the request's
// service field, so a test can produce every kind of load:
//
//	""        SERVING
//	"fail"    ends with INTERNAL (a server error: counted in eps)
//	"hold"    waits until a "release" call (a call in flight)
//	"release" releases every held call
//
// It prints "serving on ADDR", then "registered token=T" once the balancer
// acked, and on SIGTERM/SIGINT runs the graceful exit (drain, finish calls,
// leave) and prints "stopped drained=true|false" before exiting 0.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"lookaside/reporter"
)

type health struct {
	healthpb.UnimplementedHealthServer
	mu      sync.Mutex
	release chan struct{}
}

func (h *health) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	switch req.GetService() {
	case "fail":
		return nil, status.Error(codes.Internal, "asked to fail")
	case "hold":
		h.mu.Lock()
		ch := h.release
		h.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	case "release":
		h.mu.Lock()
		close(h.release)
		h.release = make(chan struct{})
		h.mu.Unlock()
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func main() {
	lb := flag.String("lb", "", "the balancer, HOST:PORT")
	service := flag.String("service", "", "service name to register")
	listen := flag.String("listen", "127.0.0.1:0", "HOST:PORT to serve on (port 0 picks one)")
	zone := flag.String("zone", "", "failure domain")
	flag.Parse()
	if *lb == "" || *service == "" {
		fmt.Fprintln(os.Stderr, "usage: examplebackend --lb HOST:PORT --service NAME [--listen HOST:PORT] [--zone Z]")
		os.Exit(2)
	}
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	addr := lis.Addr().String()
	rep, err := reporter.Start(reporter.Options{Target: *lb, Service: *service, Address: addr, Zone: *zone})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(rep.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(rep.StreamServerInterceptor()))
	healthpb.RegisterHealthServer(srv, &health{release: make(chan struct{})})
	go func() {
		if err := srv.Serve(lis); err != nil {
			fmt.Fprintln(os.Stderr, "serve:", err)
		}
	}()
	fmt.Printf("serving on %s\n", addr)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		if rep.WaitRegistered(context.Background()) == nil {
			fmt.Printf("registered token=%s\n", rep.Info().Token)
		}
	}()
	<-sigs
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = rep.GracefulStop(ctx, srv)
	info := rep.Info()
	fmt.Printf("stopped drained=%t loads_sent=%d err=%v\n", info.Draining, info.LoadsSent, err)
	if err != nil {
		os.Exit(1)
	}
}
