package rules

import (
	"regexp"
	"strings"
)

// settingsClause finds a SETTINGS clause: with readonly = 2 (what lets
// detect pass its limits with each query) a query could raise its own
// limits with one.
var settingsClause = regexp.MustCompile(`(?i)\bsettings\b`)

// externalFunc finds calls of the table functions that reach outside the
// database (other servers, files, URLs, programs): with readonly = 2
// ClickHouse 18.16 allows table functions, and a rule has no business with
// these.
var externalFunc = regexp.MustCompile(`(?i)\b(remote|remoteSecure|cluster|clusterAllReplicas|url|urlCluster|file|fileCluster|input|s3|s3Cluster|gcs|hdfs|hdfsCluster|azureBlobStorage|azureBlobStorageCluster|mysql|postgresql|mongodb|redis|sqlite|jdbc|odbc|executable|iceberg|deltaLake|hudi|dictionary)\s*\(`)

// sqlGuard returns why a sql rule query is refused, or "": it must not
// carry its own SETTINGS (which would override the limits detect sets) or
// call table functions that reach outside the database. String literals and
// comments are not looked at. This is a guard in depth; the rules user's
// grants are the boundary.
func sqlGuard(q string) string {
	code := stripLiterals(q)
	if settingsClause.MatchString(code) {
		return "query must not set SETTINGS: limits come from detect.sql_rules"
	}
	if m := externalFunc.FindStringSubmatch(code); m != nil {
		return "query must not call the table function " + m[1] + "(): rules read the database only"
	}
	return ""
}

// stripLiterals blanks out string literals, quoted identifiers and comments
// of SQL text, keeping the rest.
func stripLiterals(q string) string {
	var b strings.Builder
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\'' || c == '"' || c == '`':
			for i++; i < len(q) && q[i] != c; i++ {
				if q[i] == '\\' {
					i++
				}
			}
			b.WriteString(" '' ")
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			for i < len(q) && q[i] != '\n' {
				i++
			}
			b.WriteByte('\n')
		case c == '/' && i+1 < len(q) && q[i+1] == '*':
			end := strings.Index(q[i+2:], "*/")
			if end < 0 {
				i = len(q)
			} else {
				i += end + 3
			}
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
