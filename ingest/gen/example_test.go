package gen_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/auditwatch/auditwatch/ingest/gen"
)

// Writing newline-delimited JSON, as a Kafka producer or a file sink would.
func ExampleGenerator_Run() {
	cfg := gen.DefaultConfig()
	cfg.Duration = time.Minute
	cfg.Events = 2
	cfg.Scenarios = nil
	g, err := gen.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	var buf []byte
	err = g.Run(context.Background(), func(e gen.Event) error {
		buf = append(e.AppendJSON(buf[:0]), '\n')
		_, err := os.Stdout.Write(buf)
		return err
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output:
	// {"ts":"2026-11-27T00:00:12.603Z","request_id":"req_1b3c0b574f4aec123517","method":"DELETE","path":"/v1/orders/ord_01M81X8DN8P0MS367WNJ42NCA8","status":200,"client_ip":"85.146.194.139","api_key":"bk_live_YOr6y2tpGNhh5nnfi3FW8kgiBA4wxbvX","key_id":"key_01M4A6AXD0N1Z9AZ4K30GC21K4","auth_method":"api_key","env":"live","signed":true,"signature_ts":1795737613,"user_agent":"python-requests/2.31.0","latency_ms":25.94,"bytes_in":0,"bytes_out":233,"account_id":"acc_5lppzYo7Xuva"}
	// {"ts":"2026-11-27T00:00:56.862Z","request_id":"req_0237b75345301e557eeb","method":"GET","path":"/v1/marketdata/quotes?symbols=TLT,NVDA","status":200,"client_ip":"35.175.135.176","api_key":"bk_live_bublsXIAcsqfMdYhIdAcAlaGI7xjWXEo","key_id":"key_01M5S3AP08S5X862FAN2MT273H","auth_method":"api_key","env":"live","signed":true,"signature_ts":1795737654,"user_agent":"python-requests/2.31.0","latency_ms":10.72,"bytes_in":0,"bytes_out":2533,"account_id":"acc_kWLeod7wycAA"}
}

// The ground truth a detector is scored against.
func ExampleGenerator_Incidents() {
	cfg := gen.DefaultConfig()
	cfg.EventsPerSecond = 1
	cfg.Scenarios = []string{gen.ScenarioKeyEnumeration}
	g, err := gen.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, inc := range g.Incidents() {
		fmt.Println(inc.Name, inc.ClientIP, inc.Start.Format(time.RFC3339), inc.End.Sub(inc.Start))
	}
	// Output:
	// key_enumeration 185.32.240.69 2026-11-27T19:49:43Z 4m0s
}
