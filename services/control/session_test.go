package control

import (
	"errors"
	"strings"
	"testing"
)

type step struct {
	send, want string
}

// runTranscript plays steps in order on one connection: commands on one
// session are sequential, and every reply is compared byte for byte.
func runTranscript(t *testing.T, r *rawConn, steps []step) {
	t.Helper()
	for _, s := range steps {
		r.send(s.send)
		r.expect(s.want)
	}
}

const statusGolden = `{"Advertisements":[{"NodeID":"nodea","Service":"control","Time":"2026-11-25T15:36:18.151379353Z","ConnType":1,"Tags":{"type":"Control Service"},"WorkCommands":[{"WorkType":"cat","Secure":false}]},` +
	`{"NodeID":"nodeb","Service":"\u003cx\u0026y\u003e","Time":"2026-11-25T15:36:18Z","ConnType":0,"Tags":null,"WorkCommands":null}],` +
	`"Connections":[{"NodeID":"nodeb","Cost":1}],"KnownConnectionCosts":{"nodea":{"nodeb":1},"nodeb":{"nodea":1.5}},"NodeID":"nodea",` +
	`"RoutingTable":{"nodeb":"nodeb"},"SystemCPUCount":2,"SystemMemoryMiB":24105,"Version":"1.5.0"}` + "\n"

func TestTranscriptNodeCommands(t *testing.T) {
	ts := startServer(t, Options{}, OriginUnix)
	r := dialRaw(t, ts.path)
	runTranscript(t, r, []step{
		{"foo\n", "ERROR: Unknown command\n"},
		// Empty lines (also after \r removal) produce no reply: the next
		// reply is the one for "STATUS extra".
		{"\n\r\n\r\rSTATUS extra\n", "ERROR: status command does not take parameters\n"},
		{"{bad json\n", "ERROR: invalid character 'b' looking for beginning of object key string\nERROR: Unknown command\n"},
		{"{\"command\":\"status\"\n", "ERROR: unexpected end of JSON input\nERROR: Unknown command\n"},
		{`{"nocommand":1}` + "\n", "ERROR: JSON did not contain a command\nERROR: Unknown command\n"},
		{`{"command":5}` + "\n", "ERROR: command must be a string\nERROR: Unknown command\n"},
		{`{"command":"WORK","subcommand":"list"}` + "\n", "ERROR: Unknown command\n"},
		{`{"command":"status","requested_fields":["Version","NodeID","bogus"]}` + "\n", `{"NodeID":"nodea","Version":"1.5.0"}` + "\n"},
		{`{"command": "status", "requested_fields": ["Version"]}` + "\n", `{"Version":"1.5.0"}` + "\n"},
		{`{"command":"status","requested_fields":[]}` + "\n", "{}\n"},
		{`{"command":"status","requested_fields":"Version"}` + "\n", "ERROR: requested_fields must be a list of strings\n"},
		{`{"command":"status","requested_fields":null}` + "\n", "ERROR: requested_fields must be a list of strings\n"},
		{`{"command":"status","requested_fields":["Version",1]}` + "\n", "ERROR: each element of requested_fields must be a string\n"},
		{"status\r\n", statusGolden},
		{`{"command":"status"}` + "\n", statusGolden},
		{"ping nodeb\n", `{"From":"nodeb","Success":true,"Time":321041,"TimeStr":"321.041µs"}` + "\n"},
		{"PING localhost\n", `{"From":"nodea","Success":true,"Time":850,"TimeStr":"850ns"}` + "\n"},
		{"ping\n", "ERROR: no ping target\n"},
		{"ping \n", "ERROR: no ping target\n"},
		{"ping  nodeb\n", `{"Error":"no route to node","Success":false}` + "\n"}, // target " nodeb", verbatim
		{`{"command":"ping","target":"nodex"}` + "\n", `{"Error":"no route to node","Success":false}` + "\n"},
		{`{"command":"ping"}` + "\n", "ERROR: no ping target\n"},
		{`{"command":"ping","target":1}` + "\n", "ERROR: ping target must be string\n"},
		{"traceroute nodeb\n", `{"0":{"From":"nodea","Time":204713,"TimeStr":"204.713µs"},"1":{"From":"nodeb","Time":282759,"TimeStr":"282.759µs"}}` + "\n"},
		{"traceroute\n", "ERROR: no traceroute target\n"},
		{`{"command":"traceroute","target":[]}` + "\n", "ERROR: traceroute target must be string\n"},
		{"traceroute nowhere\n", "ERROR: traceroute failed\n"},
		{"reload\n", `{"Success":true}` + "\n"},
		{"reload with ignored params\n", `{"Success":true}` + "\n"},
		{"connect nodeb\n", "ERROR: no connect target\n"},
		{"connect a b c d\n", "ERROR: too many parameters\n"},
		{"connect nodeb control x\n", "ERROR: unknown TLS config x\n"},
		{"connect nosuch control \n", "ERROR: INTERNAL_ERROR (local): no route to node\n"},
		{`{"command":"connect","node":"nodeb"}` + "\n", "ERROR: no connect target service\n"},
		{`{"command":"connect"}` + "\n", "ERROR: no connect target node\n"},
		{`{"command":"connect","node":1,"service":"x"}` + "\n", "ERROR: connect target node must be string\n"},
		{`{"command":"connect","node":"a","service":true}` + "\n", "ERROR: connect target service must be string\n"},
		{`{"command":"connect","node":"a","service":"b","tls":{}}` + "\n", "ERROR: connect tls name must be string\n"},
	})
}

func TestTracerouteKeysSortBytewise(t *testing.T) {
	ts := startServer(t, Options{}, OriginUnix)
	r := dialRaw(t, ts.path)
	r.send("traceroute far\n")
	var b strings.Builder
	b.WriteString("{")
	for i, k := range []int{0, 1, 10, 11, 2, 3, 4, 5, 6, 7, 8, 9} {
		if i > 0 {
			b.WriteString(",")
		}
		ms := []string{"0s", "1ms", "2ms", "3ms", "4ms", "5ms", "6ms", "7ms", "8ms", "9ms", "10ms", "11ms"}[k]
		if k == 11 {
			b.WriteString(`"11":{"Error":"timeout","From":"n11","Time":11000000,"TimeStr":"11ms"}`)
			continue
		}
		b.WriteString(`"` + itoa(k) + `":{"From":"n` + itoa(k) + `","Time":` + itoa(k*1000000) + `,"TimeStr":"` + ms + `"}`)
	}
	b.WriteString("}\n")
	r.expect(b.String())
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var d []byte
	for ; i > 0; i /= 10 {
		d = append([]byte{byte('0' + i%10)}, d...)
	}
	return string(d)
}

func TestReloadFailureIsJSON(t *testing.T) {
	ts := startServer(t, Options{}, OriginUnix)
	ts.ops.reloadErr = errors.New("no configuration file was provided, reload function not set ERRORCODE 4")
	r := dialRaw(t, ts.path)
	runTranscript(t, r, []step{
		{"reload\n", `{"Error":"no configuration file was provided, reload function not set ERRORCODE 4","Success":false}` + "\n"},
	})
}

func TestTranscriptWorkCommands(t *testing.T) {
	ts := startServer(t, Options{}, OriginUnix)
	ts.ops.addUnit("Done0001", &fakeUnit{workType: "cat", state: 2, detail: "exit status 0", stdout: []byte("hello world\n")})
	ts.ops.addUnit("PendUnit", &fakeUnit{workType: "remote", state: 1, detail: "Running"})
	r := dialRaw(t, ts.path)
	doneStatus := `{"Detail":"exit status 0","ExtraData":null,"State":2,"StateName":"Succeeded","StdoutSize":12,"WorkType":"cat"}`
	runTranscript(t, r, []step{
		{"work\n", "ERROR: bad command\n"},
		{"work bogus\n", "ERROR: bad command\n"},
		{`{"command":"work","subcommand":"adopt","unitid":"x"}` + "\n", "ERROR: bad command\n"},
		{"work submit nodea\n", "ERROR: work submit requires a target node and work type\n"},
		{"work status\n", "ERROR: work status requires a unit ID\n"},
		{"work status a b\n", "ERROR: work status does not take parameters after the unit ID\n"},
		{"work force-release\n", "ERROR: work force-release requires a unit ID\n"},
		{"WORK CANCEL a b\n", "ERROR: work cancel does not take parameters after the unit ID\n"},
		{"work results\n", "ERROR: work results requires a unit ID\n"},
		{"work results a 1 2\n", "ERROR: work results only takes a unit ID and optional start position\n"},
		{"work results x y\n", "ERROR: error converting start position to integer: strconv.ParseInt: parsing \"y\": invalid syntax\n"},
		{"work list nosuch\n", "ERROR: unknown work unit nosuch\n"},
		{"work list \n", "ERROR: unknown work unit \n"},
		{"work status nosuch\n", "ERROR: unknown work unit nosuch\n"},
		{"work cancel nosuch\n", "ERROR: unknown work unit nosuch\n"},
		{"work release nosuch\n", "ERROR: unknown work unit nosuch\n"},
		{"work results nosuch\n", "ERROR: unknown work unit nosuch\n"},
		{"work submit nodea nosuch\n", "ERROR: unknown work type nosuch\n"},
		{"work submit nodea cat extra param\n", "ERROR: extra params provided but not allowed\n"},
		{"work status Done0001\n", doneStatus + "\n"},
		{"work list Done0001\n", `{"Done0001":` + doneStatus + "}\n"},
		{`{"command":"work","subcommand":"list","unitid":5}` + "\n",
			`{"Done0001":` + doneStatus + `,"PendUnit":{"Detail":"Running","ExtraData":null,"State":1,"StateName":"Running","StdoutSize":0,"WorkType":"remote"}}` + "\n"},
		// JSON submit errors, one per parse check of docs/protocol.md §12.4.
		{`{"command":"work","subcommand":"submit","node":"nodea","worktype":"cat","ttl":"1s"}` + "\n", "ERROR: ttl option is intended for remote work only\n"},
		{`{"command":"work","subcommand":"submit","node":"nodea","worktype":"cat","x":1}` + "\n", "ERROR: submit parameters must all be strings and x is not\n"},
		{`{"command":"work","subcommand":"submit","worktype":"cat"}` + "\n", "ERROR: field node missing\n"},
		{`{"command":"work","subcommand":"submit","node":"nodea"}` + "\n", "ERROR: field worktype missing\n"},
		{`{"command":"work","subcommand":"submit","node":"nodea","worktype":"cat","signature":"abc"}` + "\n", "ERROR: work type did not expect a signature\n"},
		{`{"command":"work"}` + "\n", "ERROR: field subcommand missing\n"},
		{`{"command":"work","subcommand":5}` + "\n", "ERROR: field subcommand must be a string\n"},
		{`{"command":"work","subcommand":"status"}` + "\n", "ERROR: field unitid missing\n"},
		{`{"command":"work","subcommand":"cancel","unitid":7}` + "\n", "ERROR: field unitid must be a string\n"},
		{`{"command":"work","subcommand":"results","unitid":"Done0001","startpos":"6"}` + "\n", "ERROR: field startpos value 6 is not convertible to an int\n"},
		{`{"command":"work","subcommand":"results","unitid":"Done0001"}` + "\n", "ERROR: field startpos missing\n"},
		{`{"command":"work","subcommand":"results","unitid":"Done0001","startpos":"abc"}` + "\n", "ERROR: strconv.ParseInt: parsing \"abc\": invalid syntax\n"},
		{`{"command":"work","subcommand":"results","unitid":"Done0001","startpos":true}` + "\n", "ERROR: field startpos value %!s(bool=true) is not convertible to an int\n"},
		// Cancel and release reply keys.
		{"work cancel Done0001\n", `{"cancelled":"Done0001"}` + "\n"},
		{`{"command":"work","subcommand":"cancel","unitid":"PendUnit"}` + "\n", `{"cancel pending":"PendUnit"}` + "\n"},
		{"work release PendUnit\n", `{"release pending":"PendUnit"}` + "\n"},
		{"work force-release PendUnit\n", `{"released":"PendUnit"}` + "\n"},
		{"work status PendUnit\n", "ERROR: unknown work unit PendUnit\n"},
		{"work release Done0001\n", `{"released":"Done0001"}` + "\n"},
		{"work release Done0001\n", "ERROR: unknown work unit Done0001\n"},
		{"work list\n", "{}\n"},
	})
}

func TestSubmitPayloadFollowsCommandInSameWrite(t *testing.T) {
	ts := startServer(t, Options{}, OriginUnix)
	r := dialRaw(t, ts.path)
	// The payload arrives in the same segment as the command: bytes the
	// server buffered past "\n" must reach the unit's stdin.
	r.send("work submit localhost cat\nhello world\n")
	if err := r.conn.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	r.expect("Work unit created with ID Unit0001. Send stdin data and EOF.\n")
	r.expect(`{"result":"Job Started","unitid":"Unit0001"}` + "\n")
	r.expectEOF()

	r2 := dialRaw(t, ts.path)
	runTranscript(t, r2, []step{
		{"work status Unit0001\n", `{"Detail":"exit status 0","ExtraData":null,"State":2,"StateName":"Succeeded","StdoutSize":12,"WorkType":"cat"}` + "\n"},
	})
	r2.send("work results Unit0001 3\n")
	r2.expect("Streaming results for work unit Unit0001\nlo world\n")
	r2.expectEOF()
}

func TestSubmitTextParamsAndRemotePending(t *testing.T) {
	ts := startServer(t, Options{}, OriginUnix)
	r := dialRaw(t, ts.path)
	r.send(`{"command": "work", "subcommand": "submit", "node": "nodeb", "worktype": "cat", "tlsclient": "tc", "ttl": "20s", "signwork": "true", "p": "v\u00e9"}` + "\n")
	r.expect("Work unit created with ID Unit0001. Send stdin data and EOF.\n")
	if err := r.conn.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	r.expect(`{"result":"Job Submitted","unitid":"Unit0001"}` + "\n")
	r.expectEOF()
	got := ts.ops.lastSubmit
	want := WorkSubmitRequest{Node: "nodeb", WorkType: "cat", TLSClient: "tc", TTL: "20s", SignWork: true,
		Signature: Signature{Trusted: true}, Params: map[string]string{"p": "vé"}}
	if got.Node != want.Node || got.WorkType != want.WorkType || got.TLSClient != want.TLSClient ||
		got.TTL != want.TTL || got.SignWork != want.SignWork || got.Signature != want.Signature ||
		len(got.Params) != 1 || got.Params["p"] != "vé" {
		t.Fatalf("submit request = %+v, want %+v", got, want)
	}
}

func TestResultsForms(t *testing.T) {
	ts := startServer(t, Options{}, OriginUnix)
	ts.ops.addUnit("Done0001", &fakeUnit{workType: "cat", state: 2, stdout: []byte("0123456789")})
	tests := []struct {
		name, send, want string
	}{
		{"text default start", "work results Done0001\n", "0123456789"},
		{"text start", "work results Done0001 3\n", "3456789"},
		{"json numeric start", `{"command":"work","subcommand":"results","unitid":"Done0001","startpos":6}` + "\n", "6789"},
		{"json fractional start truncates", `{"command":"work","subcommand":"results","unitid":"Done0001","startpos":6.9}` + "\n", "6789"},
		{"beyond EOF", "work results Done0001 100\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := dialRaw(t, ts.path)
			r.send(tt.send)
			r.expect("Streaming results for work unit Done0001\n")
			if got := r.readAll(); got != tt.want {
				t.Fatalf("results = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFinalLineWithoutNewlineRuns(t *testing.T) {
	ts := startServer(t, Options{}, OriginUnix)
	r := dialRaw(t, ts.path)
	r.send(`{"command":"status","requested_fields":["NodeID"]}`)
	if err := r.conn.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	r.expect(`{"NodeID":"nodea"}` + "\n")
	r.expectEOF()
}
