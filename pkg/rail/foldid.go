package rail

import "strings"

// FoldID is the form in which an id a provider lists may be one of ours
// although it is not ours exactly: trimmed, lower-cased, and an all-digit
// id without its leading zeros (a provider that keeps our "000777" as a
// number answers 777). A lookup that lists an id whose FoldID is one of
// ours cannot prove our payee absent. "" stays "".
func FoldID(id string) string {
	id = strings.ToLower(strings.TrimSpace(id))
	if id == "" || strings.Trim(id, "0123456789") != "" {
		return id
	}
	if t := strings.TrimLeft(id, "0"); t != "" {
		return t
	}
	return "0"
}
