package event

import "time"

// Row returns row i as a Row (strings copied).
func (c *Rows) Row(i int) Row {
	r := Row{
		TS:        time.UnixMilli(c.TSMilli[i]).UTC(),
		RequestID: c.RequestID.Get(i), Method: c.Method.Get(i), Path: c.Path.Get(i), Route: c.Route.Get(i),
		Status: c.Status[i], ErrorCode: c.ErrorCode.Get(i), ClientIP: c.ClientIP.Get(i), ClientNet: c.ClientNet.Get(i),
		KeyID: c.KeyID.Get(i), KeySource: c.KeySource.Get(i), KeyFP: c.KeyFP.Get(i), KeyHint: c.KeyHint.Get(i),
		Env: c.Env.Get(i), AuthMethod: c.AuthMethod.Get(i), OAuthClientID: c.OAuthClientID.Get(i),
		AccountID: c.AccountID.Get(i), Signed: c.Signed[i] != 0, UserAgent: c.UserAgent.Get(i), Origin: c.Origin.Get(i),
		LatencyMS: c.LatencyMS[i], BytesIn: c.BytesIn[i], BytesOut: c.BytesOut[i],
		KafkaPartition: c.KafkaPartition[i], KafkaOffset: c.KafkaOffset[i],
	}
	if c.HasSignatureTS[i] {
		sts, off := c.SignatureTS[i], c.ClockOffsetS[i]
		r.SignatureTS, r.ClockOffsetS = &sts, &off
	}
	return r
}

// Subset returns a new Rows holding rows idx of c, in that order.
func (c *Rows) Subset(idx []int) *Rows {
	out := &Rows{}
	for _, i := range idx {
		r := c.Row(i)
		out.Append(&r)
	}
	return out
}
