package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
)

// KafkaConfig says where the leader group lives.
type KafkaConfig struct {
	Brokers []string
	// Dialer carries the TLS and SASL settings (nil: plain TCP). It is
	// copied; the copy's ClientID is set to ClientID.
	Dialer *kafka.Dialer
	// Transport carries the same settings for describing the group (who
	// leads, for a standby's /readyz); nil: plain TCP.
	Transport *kafka.Transport
	GroupID   string
	Topic     string // one partition; the member assigned partition 0 leads
	// SessionTimeout: a member not heard from for this long is dropped
	// and, if it led, another takes over (the broker's
	// group.min.session.timeout.ms, 6s by default, is the least).
	SessionTimeout time.Duration
	// ClientID names this process in the group: member ids begin with it.
	ClientID string
}

// NewKafka returns an Elector that joins the consumer group cfg.GroupID on
// cfg.Topic (which must exist). It does not connect until Run.
func NewKafka(cfg KafkaConfig, log *slog.Logger, metrics *Metrics) (*Elector, error) {
	if cfg.GroupID == "" || cfg.Topic == "" || len(cfg.Brokers) == 0 {
		return nil, errors.New("leader group: brokers, group id and topic are required")
	}
	e := New(nil, cfg.SessionTimeout, log, metrics)
	session := cfg.SessionTimeout
	if session <= 0 {
		session = 10 * time.Second
	}
	d := kafka.Dialer{Timeout: 10 * time.Second, DualStack: true}
	if cfg.Dialer != nil {
		d = *cfg.Dialer
	}
	d.ClientID = cfg.ClientID
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                cfg.GroupID,
		Brokers:           cfg.Brokers,
		Dialer:            &d,
		Topics:            []string{cfg.Topic},
		GroupBalancers:    []kafka.GroupBalancer{stickyBalancer{e: e}},
		HeartbeatInterval: HeartbeatInterval(session),
		SessionTimeout:    session,
		// How long the coordinator waits for the members of an ending
		// generation to rejoin: the leader stops its work (a Slack message
		// being sent is finished first) within this.
		RebalanceTimeout: max(3*session, 30*time.Second),
		JoinGroupBackoff: time.Second,
		Timeout:          5 * time.Second,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			log.Debug("kafka leader group: " + fmt.Sprintf(msg, args...))
		}),
	})
	if err != nil {
		return nil, fmt.Errorf("leader group %s: %w", cfg.GroupID, err)
	}
	e.group = &kafkaGroup{cg: cg, topic: cfg.Topic}
	client := &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: 5 * time.Second}
	if cfg.Transport != nil {
		client.Transport = cfg.Transport
	}
	e.describe = func(ctx context.Context) (string, error) {
		ms, err := DescribeGroup(ctx, client, cfg.GroupID, cfg.Topic)
		if err != nil {
			return "", err
		}
		for _, m := range ms {
			if m.Leads {
				return m.ID, nil
			}
		}
		return "", nil
	}
	return e, nil
}

// Member is a member of the leader group as the coordinator describes it.
type Member struct {
	ID, ClientID, Host string
	Leads              bool // assigned partition 0 of the leader topic
}

// DescribeGroup asks the group coordinator for the members of group and
// which of them owns partition 0 of topic. An empty group (no detect
// running) has no members.
func DescribeGroup(ctx context.Context, client *kafka.Client, group, topic string) ([]Member, error) {
	resp, err := client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil {
		return nil, fmt.Errorf("describe group %s: %w", group, err)
	}
	var out []Member
	for _, g := range resp.Groups {
		if g.Error != nil {
			return nil, fmt.Errorf("describe group %s: %w", group, g.Error)
		}
		for _, m := range g.Members {
			mem := Member{ID: m.MemberID, ClientID: m.ClientID, Host: m.ClientHost}
			for _, t := range m.MemberAssignments.Topics {
				if t.Topic == topic && slices.Contains(t.Partitions, 0) {
					mem.Leads = true
				}
			}
			out = append(out, mem)
		}
	}
	return out, nil
}

// IsGenerationOver reports whether err is the coordinator saying that this
// member's generation is not the current one any more.
func IsGenerationOver(err error) bool {
	for _, e := range []kafka.Error{kafka.IllegalGeneration, kafka.UnknownMemberId, kafka.RebalanceInProgress, kafka.FencedInstanceID} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// kafkaGroup adapts kafka-go's ConsumerGroup to Group.
type kafkaGroup struct {
	cg    *kafka.ConsumerGroup
	topic string
}

func (g *kafkaGroup) Next(ctx context.Context) (Generation, error) {
	gen, err := g.cg.Next(ctx)
	if err != nil {
		return nil, err
	}
	return &kafkaGeneration{gen: gen, topic: g.topic}, nil
}

func (g *kafkaGroup) Close() error { return g.cg.Close() }

type kafkaGeneration struct {
	gen   *kafka.Generation
	topic string
}

func (g *kafkaGeneration) ID() int32        { return g.gen.ID }
func (g *kafkaGeneration) MemberID() string { return g.gen.MemberID }
func (g *kafkaGeneration) Owns() bool {
	for _, a := range g.gen.Assignments[g.topic] {
		if a.ID == 0 {
			return true
		}
	}
	return false
}
func (g *kafkaGeneration) Start(fn func(ctx context.Context)) { g.gen.Start(fn) }

// Renew commits offset 0 of the leader partition: the coordinator accepts
// a commit only from a member of the current generation (else
// IllegalGeneration, UnknownMemberId or RebalanceInProgress).
func (g *kafkaGeneration) Renew() error {
	return g.gen.CommitOffsets(map[string]map[int]int64{g.topic: {0: 0}})
}

// stickyBalancer gives every partition of the leader topic to one member:
// the one that led the most recent generation, if it is still there and
// was not dropped since (so that a replica joining or restarting does not
// move leadership), else the member with the lowest id. Each member says in
// its join request's user data which generation it led ("led:<generation>").
type stickyBalancer struct{ e *Elector }

const ledPrefix = "led:"

func (stickyBalancer) ProtocolName() string { return "auditwatch-leader-v1" }

func (b stickyBalancer) UserData() ([]byte, error) {
	if g := b.e.ledGeneration(); g > 0 {
		return []byte(ledPrefix + strconv.Itoa(int(g))), nil
	}
	return nil, nil
}

// ledClaim parses a member's user data: the generation it led, or 0.
func ledClaim(data []byte) int {
	s, ok := strings.CutPrefix(string(data), ledPrefix)
	if !ok {
		return 0
	}
	g, err := strconv.Atoi(s)
	if err != nil || g < 0 {
		return 0
	}
	return g
}

func (stickyBalancer) AssignGroups(members []kafka.GroupMember, partitions []kafka.Partition) kafka.GroupMemberAssignments {
	out := kafka.GroupMemberAssignments{}
	if len(members) == 0 {
		return out
	}
	ms := slices.Clone(members)
	// The most recent leader first, then by id.
	sort.SliceStable(ms, func(i, j int) bool {
		gi, gj := ledClaim(ms[i].UserData), ledClaim(ms[j].UserData)
		if gi != gj {
			return gi > gj
		}
		return ms[i].ID < ms[j].ID
	})
	for _, m := range ms {
		out[m.ID] = map[string][]int{}
	}
	pick := ms[0].ID
	for _, p := range partitions {
		out[pick][p.Topic] = append(out[pick][p.Topic], p.ID)
	}
	return out
}
