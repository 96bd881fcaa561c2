package firewall

import (
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestEvaluate(t *testing.T) {
	rules := []map[string]string{
		{"Action": "DROP", "FromNode": "/bad.*/"},
		{"action": "reject", "tonode": "b", "toservice": "ping"},
		{"action": "accept", "fromservice": "/(?i)OK/"},
		{"action": "reject", "fromnode": "x.y"},
		{"action": "reject", "fromnode": "/alt|other/"},
	}
	rs, err := Parse(rules)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		m    Message
		want Action
	}{
		{"regex anchored match", Message{FromNode: "badnode", ToNode: "b"}, Drop},
		{"regex is anchored", Message{FromNode: "notbad", ToNode: "c"}, Accept},
		{"all conditions", Message{FromNode: "a", ToNode: "b", ToService: "ping"}, Reject},
		{"one condition differs", Message{FromNode: "a", ToNode: "b", ToService: "pong"}, Accept},
		{"case-insensitive regex flag", Message{FromNode: "x.y", FromService: "ok"}, Accept},
		{"literal is not a regex", Message{FromNode: "xzy"}, Accept},
		{"literal match", Message{FromNode: "x.y"}, Reject},
		{"alternation first branch", Message{FromNode: "alt"}, Reject},
		{"alternation second branch", Message{FromNode: "other"}, Reject},
		{"alternation is anchored at the end", Message{FromNode: "alt-evil"}, Accept},
		{"alternation is anchored at the start", Message{FromNode: "evil-other"}, Accept},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rs.Evaluate(tt.m); got != tt.want {
				t.Fatalf("Evaluate(%+v) = %v, want %v", tt.m, got, tt.want)
			}
		})
	}
	catchAll, err := Parse([]map[string]string{{"action": "drop"}})
	if err != nil || catchAll.Evaluate(Message{}) != Drop {
		t.Fatalf("rule without conditions: %v", err)
	}
	if (Rules)(nil).Evaluate(Message{}) != Accept {
		t.Fatal("no rules must accept")
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name  string
		rules []map[string]string
		want  string
	}{
		{"unknown action", []map[string]string{{"action": "allow"}}, `rule 0: key "action": unknown action "allow"`},
		{"missing action", []map[string]string{{"action": "drop"}, {"fromnode": "a"}}, `rule 1: missing key "action"`},
		{"unknown key", []map[string]string{{"action": "drop", "port": "1"}}, `rule 0: unknown key "port"`},
		{"unclosed regex", []map[string]string{{"action": "drop", "tonode": "/abc"}}, `key "tonode": regular expression "/abc" is not closed`},
		{"lone slash", []map[string]string{{"action": "drop", "tonode": "/"}}, `not closed`},
		{"bad regex", []map[string]string{{"action": "drop", "toservice": "/a(/"}}, `rule 0: key "toservice": error parsing regexp`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.rules)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want containing %q", err, tt.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add("action", "drop", "fromnode", "/a.*/")
	f.Add("Action", "ACCEPT", "toservice", "x")
	f.Add("action", "reject", "tonode", "/(/")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		rs, err := Parse([]map[string]string{{k1: v1, k2: v2}})
		if err != nil {
			return
		}
		_ = rs.Evaluate(Message{FromNode: v1, ToNode: v2, FromService: k1, ToService: k2})
	})
}
