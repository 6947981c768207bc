package event

import (
	"reflect"
	"testing"
	"time"
)

// TestRowRoundTrip fills every field of a Row with a non-zero value and
// checks that Rows gives it back unchanged: a column added to Row but not to
// Row(i) fails here.
func TestRowRoundTrip(t *testing.T) {
	var want Row
	v := reflect.ValueOf(&want).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString(v.Type().Field(i).Name + "-value")
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Int32, reflect.Int64:
			f.SetInt(int64(i + 7))
		case reflect.Uint16, reflect.Uint32, reflect.Uint64:
			f.SetUint(uint64(i + 11))
		case reflect.Float32:
			f.SetFloat(float64(i) + 0.5)
		case reflect.Pointer:
			p := reflect.New(f.Type().Elem())
			if p.Elem().Kind() == reflect.Uint32 {
				p.Elem().SetUint(uint64(i + 13))
			} else {
				p.Elem().SetInt(int64(i + 13))
			}
			f.Set(p)
		case reflect.Struct: // time.Time
			f.Set(reflect.ValueOf(time.UnixMilli(1_700_000_000_123).UTC()))
		default:
			t.Fatalf("field %s: kind %s not covered by this test", v.Type().Field(i).Name, f.Kind())
		}
	}
	var rows Rows
	other := Row{TS: time.UnixMilli(1).UTC(), RequestID: "other"}
	rows.Append(&other)
	rows.Append(&want)
	if got := rows.Row(1); !reflect.DeepEqual(got, want) {
		t.Fatalf("Row(1) = %+v, want %+v", got, want)
	}
	sub := rows.Subset([]int{1})
	if sub.Len() != 1 || !reflect.DeepEqual(sub.Row(0), want) {
		t.Fatalf("Subset: %+v", sub.Row(0))
	}
	if got := rows.Row(0); got.SignatureTS != nil || got.RequestID != "other" {
		t.Fatalf("Row(0) = %+v", got)
	}
}
