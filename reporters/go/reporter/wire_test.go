package reporter

import (
	"math"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// fields splits one message level into number -> raw values (bytes for
// length-delimited, the integer for varint and fixed64).
func fields(t *testing.T, b []byte) map[protowire.Number][]interface{} {
	t.Helper()
	out := map[protowire.Number][]interface{}{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("bad tag")
		}
		b = b[n:]
		switch typ {
		case protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			out[num], n = append(out[num], v), m
		case protowire.VarintType:
			v, m := protowire.ConsumeVarint(b)
			out[num], n = append(out[num], v), m
		case protowire.Fixed64Type:
			v, m := protowire.ConsumeFixed64(b)
			out[num], n = append(out[num], v), m
		default:
			t.Fatalf("unexpected wire type %d", typ)
		}
		if n < 0 {
			t.Fatalf("bad value for field %d", num)
		}
		b = b[n:]
	}
	return out
}

func only(t *testing.T, f map[protowire.Number][]interface{}, num protowire.Number) interface{} {
	t.Helper()
	if len(f[num]) != 1 {
		t.Fatalf("field %d: want exactly one value, got %d", num, len(f[num]))
	}
	return f[num][0]
}

func TestRegisterEncoding(t *testing.T) {
	top := fields(t, encodeRegister("web", "127.0.0.1:5000", "", "secret"))
	reg := fields(t, only(t, top, fieldRegister).([]byte))
	if s := string(only(t, reg, 1).([]byte)); s != "web" {
		t.Errorf("service = %q", s)
	}
	if s := string(only(t, reg, 2).([]byte)); s != "127.0.0.1:5000" {
		t.Errorf("address = %q", s)
	}
	if _, ok := reg[3]; ok {
		t.Errorf("empty zone must not be written")
	}
	if s := string(only(t, reg, 4).([]byte)); s != "secret" {
		t.Errorf("credential = %q", s)
	}
}

func TestLoadEncoding(t *testing.T) {
	top := fields(t, encodeLoad(Load{CPUUtilization: 0.25, RPS: 120.5, EPS: 2, InFlight: 3}))
	l := fields(t, only(t, top, fieldLoad).([]byte))
	dbl := func(num protowire.Number) float64 {
		return math.Float64frombits(only(t, l, num).(uint64))
	}
	if dbl(1) != 0.25 || dbl(4) != 120.5 || dbl(5) != 2 {
		t.Errorf("cpu/rps/eps = %v/%v/%v", dbl(1), dbl(4), dbl(5))
	}
	if v := only(t, l, 6).(uint64); v != 3 {
		t.Errorf("in_flight = %d", v)
	}
	for _, num := range []protowire.Number{2, 3} {
		if _, ok := l[num]; ok {
			t.Errorf("unset field %d written", num)
		}
	}
}

func TestDrainEncodingKeepsTheOneofWhenFalse(t *testing.T) {
	top := fields(t, encodeDrain(false))
	if inner := only(t, top, fieldDrain).([]byte); len(inner) != 0 {
		t.Errorf("Drain{false} = %x, want an empty message", inner)
	}
	inner := fields(t, only(t, fields(t, encodeDrain(true)), fieldDrain).([]byte))
	if v := only(t, inner, 1).(uint64); v != 1 {
		t.Errorf("draining = %d", v)
	}
}

func TestDecodeAckSkipsUnknownFields(t *testing.T) {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, 500)
	b = protowire.AppendTag(b, 9, protowire.BytesType) // a field from a newer balancer
	b = protowire.AppendString(b, "future")
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendString(b, "tok-1")
	b = protowire.AppendTag(b, 3, protowire.VarintType)
	b = protowire.AppendVarint(b, 7)
	b = protowire.AppendTag(b, 4, protowire.VarintType)
	b = protowire.AppendVarint(b, 2)
	a, err := decodeAck(b)
	if err != nil {
		t.Fatal(err)
	}
	if a != (Ack{ReportIntervalMs: 500, Token: "tok-1", Accepted: 7, State: 2}) {
		t.Errorf("ack = %+v", a)
	}
	if _, err := decodeAck(b[:len(b)-1]); err == nil {
		t.Errorf("a truncated ack decoded")
	}
}

func TestProcessCPUSeconds(t *testing.T) {
	before, ok := processCPUSeconds()
	if !ok {
		t.Fatal("/proc/self/stat unreadable")
	}
	x := 0.0
	for i := 0; i < 20000000; i++ { // ~tens of ms of CPU
		x += math.Sqrt(float64(i))
	}
	after, _ := processCPUSeconds()
	if after < before || x == 0 {
		t.Errorf("cpu went from %v to %v", before, after)
	}
}
