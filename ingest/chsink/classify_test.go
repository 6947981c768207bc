package chsink

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"

	"github.com/auditwatch/auditwatch/ingest"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name              string
		err               error
		rejected, partLim bool
	}{
		{"connection lost", io.ErrUnexpectedEOF, false, false},
		{"timeout", &proto.Exception{Code: 159, Message: "Timeout exceeded"}, false, false},
		{"memory", &proto.Exception{Code: 241, Message: "Memory limit (total) exceeded"}, false, false},
		{"back-pressure", &proto.Exception{Code: 252, Message: "Too many parts (300). Merges are processing significantly slower than inserts"}, false, false},
		{"unknown table", &proto.Exception{Code: 60, Message: "Table auditwatch.access_log doesn't exist"}, false, false},
		{"partition limit", &proto.Exception{Code: 252, Message: "Too many partitions for single INSERT block (more than 100)"}, true, true},
		{"value", &proto.Exception{Code: 321, Message: "Value out of range"}, true, false},
		{"throwIf", fmt.Errorf("send: %w", &proto.Exception{Code: 395, Message: "Value passed to 'throwIf' function is non zero"}), true, false},
		{"type", &proto.Exception{Code: 53, Message: "Type mismatch"}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := classify(tt.err)
			if r := errors.Is(got, ingest.ErrRejected); r != tt.rejected {
				t.Errorf("rejected = %v, want %v", r, tt.rejected)
			}
			if p := errors.Is(got, ingest.ErrPartitionLimit); p != tt.partLim {
				t.Errorf("partition limit = %v, want %v", p, tt.partLim)
			}
			if !errors.Is(got, tt.err) {
				t.Error("cause lost")
			}
		})
	}
}
