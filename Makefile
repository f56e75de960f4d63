# The README's two commands are `go run ./cmd/payouts-local` and `make test`.
GO      ?= go
PKGS    ?= ./...
# A count, not a duration: Go 1.26's fuzz coordinator can report a spurious
# "context deadline exceeded" when a duration -fuzztime ends (go.dev/issue/75804);
# a count has no deadline to race. 50,000 inputs take 3 to 30 s per target here.
FUZZTIME ?= 50000x

.PHONY: test unit published fuzz rules vet bench build

## test: everything CI runs: vet, the race-enabled test suite, brief fuzzing, alert rules.
test: vet unit published fuzz rules

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet $(PKGS)

# PARALLEL: how many of a package's t.Parallel tests run at once. The
# dispatcher's tests mostly wait (graces, leases, simulated outages), not
# compute. Four at once leave room for the tests that measure a window.
PARALLEL ?= 4

unit:
	$(GO) test -race -timeout 40m -count=1 -parallel $(PARALLEL) $(PKGS)

## published: the suites above the Wompi simulator again, with every field only
## our simulator sends switched off (the pipeline must not depend on them).
published:
	WOMPITEST_PUBLISHED_ONLY=1 $(GO) test -race -timeout 20m -count=1 -parallel $(PARALLEL) ./pkg/dispatch ./pkg/track

## fuzz: each fuzz target briefly (FUZZTIME inputs); crashers land in testdata/fuzz as regressions.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./pkg/events
	$(GO) test -run '^$$' -fuzz '^FuzzFastRequest$$' -fuzztime $(FUZZTIME) ./pkg/events
	$(GO) test -run '^$$' -fuzz '^FuzzFastStatus$$' -fuzztime $(FUZZTIME) ./pkg/events
	$(GO) test -run '^$$' -fuzz '^FuzzFastBatch$$' -fuzztime $(FUZZTIME) ./pkg/events
	$(GO) test -run '^$$' -fuzz '^FuzzOlderBatch$$' -fuzztime $(FUZZTIME) ./pkg/events
	$(GO) test -run '^$$' -fuzz '^FuzzValidate$$' -fuzztime $(FUZZTIME) ./pkg/wompi
	$(GO) test -run '^$$' -fuzz '^FuzzParseEvent$$' -fuzztime $(FUZZTIME) ./pkg/wompi
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeStrict$$' -fuzztime $(FUZZTIME) ./pkg/wompi
	$(GO) test -run '^$$' -fuzz '^FuzzFoldKeyFast$$' -fuzztime $(FUZZTIME) ./pkg/wompi
	$(GO) test -run '^$$' -fuzz '^FuzzErrorDecoding$$' -fuzztime $(FUZZTIME) ./pkg/wompi
	$(GO) test -run '^$$' -fuzz '^FuzzRefPage$$' -fuzztime $(FUZZTIME) ./pkg/wompi
	$(GO) test -run '^$$' -fuzz '^FuzzItemPage$$' -fuzztime $(FUZZTIME) ./pkg/wompi
	$(GO) test -run '^$$' -fuzz '^FuzzTimeFastPath$$' -fuzztime $(FUZZTIME) ./pkg/wompi
	$(GO) test -run '^$$' -fuzz '^FuzzReadBody$$' -fuzztime $(FUZZTIME) ./pkg/rail
	$(GO) test -run '^$$' -fuzz '^FuzzWebhook$$' -fuzztime $(FUZZTIME) ./pkg/track
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./pkg/config
	$(GO) test -run '^$$' -fuzz '^FuzzValidateAgreesWithSimulator$$' -fuzztime $(FUZZTIME) ./pkg/wompi/wompitest
	$(GO) test -run '^$$' -fuzz '^FuzzCreateBodyMatchesEncodingJSON$$' -fuzztime $(FUZZTIME) ./pkg/wompi/wompitest
	$(GO) test -run '^$$' -fuzz '^FuzzTxViewMatchesEncodingJSON$$' -fuzztime $(FUZZTIME) ./pkg/wompi/wompitest
	$(GO) test -run '^$$' -fuzz '^FuzzSmartFastPayWebhook$$' -fuzztime $(FUZZTIME) ./pkg/smartfastpay
	$(GO) test -run '^$$' -fuzz '^FuzzCreateBodyMatchesEncodingJSON$$' -fuzztime $(FUZZTIME) ./pkg/smartfastpay
	$(GO) test -run '^$$' -fuzz '^FuzzCreateAnswerMatchesEncodingJSON$$' -fuzztime $(FUZZTIME) ./pkg/smartfastpay
	$(GO) test -run '^$$' -fuzz '^FuzzCreateBodyMatchesEncodingJSON$$' -fuzztime $(FUZZTIME) ./pkg/smartfastpay/sfptest
	$(GO) test -run '^$$' -fuzz '^FuzzValueMatchesEncodingJSON$$' -fuzztime $(FUZZTIME) ./pkg/plainjson
	$(GO) test -run '^$$' -fuzz '^FuzzAppendStringMatchesMarshal$$' -fuzztime $(FUZZTIME) ./pkg/plainjson
	$(GO) test -run '^$$' -fuzz '^FuzzWEpayoutWebhook$$' -fuzztime $(FUZZTIME) ./pkg/wepayout
	$(GO) test -run '^$$' -fuzz '^FuzzEmptyPageMatchesEncodingJSON$$' -fuzztime $(FUZZTIME) ./pkg/wepayout
	$(GO) test -run '^$$' -fuzz '^FuzzPaymentMatchesEncodingJSON$$' -fuzztime $(FUZZTIME) ./pkg/wepayout
	$(GO) test -run '^$$' -fuzz '^FuzzPaymentFieldMatchesUnmarshalJSON$$' -fuzztime $(FUZZTIME) ./pkg/wepayout
	$(GO) test -run '^$$' -fuzz '^FuzzCreateBodyMatchesMarshal$$' -fuzztime $(FUZZTIME) ./pkg/wepayout
	$(GO) test -run '^$$' -fuzz '^FuzzCreateBodyMatchesEncodingJSON$$' -fuzztime $(FUZZTIME) ./pkg/wepayout/weptest
	$(GO) test -run '^$$' -fuzz '^FuzzPageLinksMatchValuesEncode$$' -fuzztime $(FUZZTIME) ./pkg/wepayout/weptest
	$(GO) test -run '^$$' -fuzz '^FuzzFindEntry$$' -fuzztime $(FUZZTIME) ./pkg/submitted

rules:
	promtool check rules deploy/prometheus/alerts.yml
	promtool test rules deploy/prometheus/alerts_test.yml

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/ ./cmd/...
