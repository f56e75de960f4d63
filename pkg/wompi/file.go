package wompi

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"path"
	"strconv"
	"strings"
	"time"
)

// CreatePayoutFileRequest is the multipart form of POST /payouts/file [doc].
type CreatePayoutFileRequest struct {
	Reference   string
	AccountID   string
	PaymentType string
	// FileType is one of the FileType constants.
	FileType string
	// FileName is the original name, e.g. "plantilla-wompi.csv".
	FileName string
	// FileMime is the original MIME type; default text/csv for .csv, else
	// text/plain.
	FileMime string
	// Content is the file, uncompressed.
	Content []byte
	// Gzip compresses Content before the upload: the part is named
	// FileName+".gz" with MIME application/gzip, and the fields fileName and
	// fileMime carry the original name and MIME [doc].
	Gzip bool
	// DispersionDatetime, Recurring and TransactionStatus mean what they do
	// in CreatePayoutRequest; Recurring is sent as the fields interval,
	// months and description.
	DispersionDatetime time.Time
	Recurring          *Recurring
	TransactionStatus  string
}

// CreatePayoutFile creates a batch from a file with POST /payouts/file.
// key is the idempotency-key, as for CreatePayout; errors mean the same.
func (c *Client) CreatePayoutFile(ctx context.Context, key string, r *CreatePayoutFileRequest) (*CreatePayoutResult, error) {
	if !ValidIdempotencyKey(key) {
		return nil, ErrInvalidIdempotencyKey
	}
	if r == nil || r.FileName == "" || len(r.Content) == 0 {
		return nil, fmt.Errorf("%w: file name and content are required", ErrInvalidRequest)
	}
	body, ctype, err := r.encode()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	}
	return c.postCreate(ctx, call{method: http.MethodPost, path: "/payouts/file", body: body,
		contentType: ctype, idemKey: key, sent: r.payeeValues})
}

func (r *CreatePayoutFileRequest) encode() ([]byte, string, error) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	fields := [][2]string{
		{"reference", r.Reference}, {"fileType", r.FileType}, {"accountId", r.AccountID},
		{"paymentType", r.PaymentType},
	}
	if !r.DispersionDatetime.IsZero() {
		fields = append(fields, [2]string{"dispersionDatetime", FormatDispersion(r.DispersionDatetime)})
	}
	if rc := r.Recurring; rc != nil {
		fields = append(fields, [2]string{"interval", strings.ToLower(rc.Interval)},
			[2]string{"months", strconv.Itoa(rc.Months)})
		if rc.Description != "" {
			fields = append(fields, [2]string{"description", rc.Description})
		}
	}
	if r.TransactionStatus != "" {
		fields = append(fields, [2]string{"transactionStatus", r.TransactionStatus})
	}
	mimeType := r.FileMime
	if mimeType == "" {
		mimeType = "text/plain"
		if strings.EqualFold(path.Ext(r.FileName), ".csv") {
			mimeType = "text/csv"
		}
	}
	content, name, partMime := r.Content, r.FileName, mimeType
	if r.Gzip {
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		if _, err := zw.Write(r.Content); err != nil {
			return nil, "", err
		}
		if err := zw.Close(); err != nil {
			return nil, "", err
		}
		content, name, partMime = gz.Bytes(), r.FileName+".gz", "application/gzip"
		fields = append(fields, [2]string{"fileName", r.FileName}, [2]string{"fileMime", mimeType})
	}
	for _, f := range fields {
		if err := w.WriteField(f[0], f[1]); err != nil {
			return nil, "", err
		}
	}
	h := make(textproto.MIMEHeader)
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename=%q`, name))
	h.Set("Content-Type", partMime)
	part, err := w.CreatePart(h)
	if err != nil {
		return nil, "", err
	}
	if _, err := part.Write(content); err != nil {
		return nil, "", err
	}
	if err := w.Close(); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), w.FormDataContentType(), nil
}

// WompiCSVHeader is the header row of OUR layout of the WOMPI file type.
// [ours]: Wompi does not publish the template's columns in text; these
// mirror the JSON transaction fields, with the bank given by its code.
var WompiCSVHeader = []string{"legalIdType", "legalId", "bankCode", "accountType", "accountNumber",
	"name", "email", "amount", "reference"}

// WompiCSVRow is one row of our WOMPI CSV layout [ours]. Amount is in cents.
type WompiCSVRow struct {
	LegalIDType, LegalID, BankCode, AccountType, AccountNumber, Name, Email string
	Amount                                                                  int64
	Reference                                                               string
}

// EncodeWompiCSV renders rows in our WOMPI CSV layout, with a header [ours].
func EncodeWompiCSV(rows []WompiCSVRow) []byte {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write(WompiCSVHeader)
	for _, r := range rows {
		_ = w.Write([]string{r.LegalIDType, r.LegalID, r.BankCode, r.AccountType, r.AccountNumber,
			r.Name, r.Email, strconv.FormatInt(r.Amount, 10), r.Reference})
	}
	w.Flush()
	return buf.Bytes()
}

// ErrCSV is wrapped by ParseWompiCSV for a malformed file.
var ErrCSV = errors.New("wompi: malformed WOMPI csv")

// ParseWompiCSV reads our WOMPI CSV layout [ours]; the header row is
// optional.
func ParseWompiCSV(r io.Reader) ([]WompiCSVRow, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = len(WompiCSVHeader)
	cr.TrimLeadingSpace = true
	var rows []WompiCSVRow
	for line := 1; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCSV, err)
		}
		if line == 1 && strings.EqualFold(strings.TrimPrefix(rec[0], "\ufeff"), WompiCSVHeader[0]) {
			continue
		}
		amt, err := strconv.ParseInt(strings.TrimSpace(rec[7]), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: amount is not an integer of cents", ErrCSV, line)
		}
		rows = append(rows, WompiCSVRow{rec[0], rec[1], rec[2], rec[3], rec[4], rec[5], rec[6], amt, rec[8]})
	}
	return rows, nil
}
