package chsink

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"

	"github.com/auditwatch/auditwatch/ingest"
)

// rejectedCodes are ClickHouse error codes that a row's data causes:
// inserting the same rows again fails the same way. Everything else
// (connection, timeout, memory, too many parts, missing table, access) may
// pass on retry or needs an operator, and is retried.
var rejectedCodes = map[int32]string{
	6:   "CANNOT_PARSE_TEXT",
	26:  "CANNOT_PARSE_QUOTED_STRING",
	27:  "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
	38:  "CANNOT_PARSE_DATE",
	41:  "CANNOT_PARSE_DATETIME",
	53:  "TYPE_MISMATCH",
	69:  "ARGUMENT_OUT_OF_BOUND",
	70:  "CANNOT_CONVERT_TYPE",
	72:  "CANNOT_PARSE_NUMBER",
	117: "INCORRECT_DATA",
	131: "TOO_LARGE_STRING_SIZE",
	190: "SIZES_OF_ARRAYS_DOESNT_MATCH",
	321: "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
	349: "CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN",
	395: "FUNCTION_THROW_IF_VALUE_IS_NON_ZERO",
	407: "DECIMAL_OVERFLOW",
	469: "VIOLATED_CONSTRAINT",
}

// tooManyParts is code 252: both the back-pressure "Too many parts" (retry)
// and "Too many partitions for single INSERT block" (split).
const tooManyParts = 252

// classify wraps err with ingest.ErrRejected (and ingest.ErrPartitionLimit)
// when ClickHouse refused the rows for what they hold.
func classify(err error) error {
	var ex *proto.Exception
	if !errors.As(err, &ex) {
		return err
	}
	switch {
	case ex.Code == tooManyParts && strings.Contains(strings.ToLower(ex.Message), "partitions"):
		return fmt.Errorf("%w: %w: %w", ingest.ErrRejected, ingest.ErrPartitionLimit, err)
	case rejectedCodes[ex.Code] != "":
		return fmt.Errorf("%w: %w", ingest.ErrRejected, err)
	}
	return err
}
