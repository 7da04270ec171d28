package reporter

// The lookaside.v1 messages a reporter sends and receives, encoded with
// protowire so the package needs no generated code (field numbers from
// proto/lookaside/v1/lookaside.proto; docs/reporting-protocol.md).

import (
	"errors"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// LoadReport.kind
const (
	fieldRegister protowire.Number = 1
	fieldLoad     protowire.Number = 2
	fieldDrain    protowire.Number = 3
)

// Load is one sample, as sent in lookaside.v1.Load. Zero means "not
// measured"; every value must be finite and non-negative.
type Load struct {
	CPUUtilization         float64 // fraction of the cores the process may use
	MemUtilization         float64 // fraction of the memory limit
	ApplicationUtilization float64 // used instead of CPU when > 0
	RPS                    float64 // calls completed per second since the previous report
	EPS                    float64 // server errors per second since the previous report
	InFlight               uint32  // calls in flight when sampled
}

// Ack is a lookaside.v1.ReportAck.
type Ack struct {
	ReportIntervalMs uint32
	Token            string
	Accepted         uint64 // messages the balancer accepted on this stream
	State            int32  // BackendState: 1 serving, 2 draining
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendDouble(b []byte, num protowire.Number, v float64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, math.Float64bits(v))
}

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// report wraps an encoded inner message as the LoadReport oneof member num.
// An empty inner message is still written: it is what selects the member.
func report(num protowire.Number, inner []byte) []byte {
	b := protowire.AppendTag(nil, num, protowire.BytesType)
	return protowire.AppendBytes(b, inner)
}

func encodeRegister(service, address, zone, credential string) []byte {
	var m []byte
	m = appendString(m, 1, service)
	m = appendString(m, 2, address)
	m = appendString(m, 3, zone)
	m = appendString(m, 4, credential)
	return report(fieldRegister, m)
}

func encodeLoad(l Load) []byte {
	var m []byte
	m = appendDouble(m, 1, l.CPUUtilization)
	m = appendDouble(m, 2, l.MemUtilization)
	m = appendDouble(m, 3, l.ApplicationUtilization)
	m = appendDouble(m, 4, l.RPS)
	m = appendDouble(m, 5, l.EPS)
	m = appendVarint(m, 6, uint64(l.InFlight))
	return report(fieldLoad, m)
}

func encodeDrain(draining bool) []byte {
	return report(fieldDrain, appendVarint(nil, 1, protowire.EncodeBool(draining)))
}

var errBadAck = errors.New("lookaside reporter: undecodable ReportAck")

// decodeAck reads a ReportAck, skipping fields it does not know (newer
// balancers may add some).
func decodeAck(b []byte) (Ack, error) {
	var a Ack
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return Ack{}, errBadAck
		}
		b = b[n:]
		switch {
		case typ == protowire.VarintType && (num == 1 || num == 3 || num == 4):
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return Ack{}, errBadAck
			}
			switch num {
			case 1:
				a.ReportIntervalMs = uint32(v)
			case 3:
				a.Accepted = v
			case 4:
				a.State = int32(v)
			}
			n = m
		case typ == protowire.BytesType && num == 2:
			s, m := protowire.ConsumeString(b)
			if m < 0 {
				return Ack{}, errBadAck
			}
			a.Token = s
			n = m
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return Ack{}, errBadAck
			}
		}
		b = b[n:]
	}
	return a, nil
}

// rawCodec hands grpc-go the bytes encoded above unchanged.
type rawCodec struct{}

func (rawCodec) Marshal(v interface{}) ([]byte, error) {
	b, ok := v.([]byte)
	if !ok {
		return nil, errors.New("lookaside reporter: rawCodec marshals []byte only")
	}
	return b, nil
}

func (rawCodec) Unmarshal(data []byte, v interface{}) error {
	p, ok := v.(*[]byte)
	if !ok {
		return errors.New("lookaside reporter: rawCodec unmarshals into *[]byte only")
	}
	*p = append((*p)[:0], data...)
	return nil
}

// Name is "proto": the bytes are protobuf, and a grpc-go that derives the
// content-subtype from the codec then still sends application/grpc+proto.
func (rawCodec) Name() string { return "proto" }
