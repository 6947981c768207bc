// Package rules is auditwatch's rule language: it parses and validates the
// YAML rule files the security team writes, reporting every problem at once
// as file:line:col. It knows nothing of ClickHouse or scheduling: detect
// evaluates the rules this package returns.
//
// A rule file holds `rules:`, a list of rules. docs/rules.md documents every
// field; fields.go lists the event fields a filter, group_by or metric may
// name.
package rules
