package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"github.com/lading-registry/lading/storage/driver"
)

// mapErr turns an S3 error about path into the driver's typed errors where
// one fits, and otherwise names the operation and path.
func mapErr(op, path string, err error) error {
	if err == nil {
		return nil
	}
	switch errorCode(err) {
	case "NoSuchKey", "NotFound", "NoSuchUpload":
		return driver.PathNotFoundError{Driver: name, Path: path}
	case "NoSuchBucket":
		// A 404 too, but about the configuration, not the path.
		return fmt.Errorf("%s: %s %s: bucket missing: %w", name, op, path, err)
	}
	if httpStatus(err) == http.StatusNotFound {
		return driver.PathNotFoundError{Driver: name, Path: path}
	}
	if code := errorCode(err); code == "XMinioStorageFull" || code == "XMinioAdminBucketQuotaExceeded" || httpStatus(err) == http.StatusInsufficientStorage {
		return fmt.Errorf("%s: %s %s: %w: %w", name, op, path, driver.ErrStorageFull, err)
	}
	err = fmt.Errorf("%s: %s %s: %w", name, op, path, err)
	if unavailable(err) {
		return driver.UnavailableError{Driver: name, Err: err}
	}
	return err
}

// unavailable tells a backend that is down, overloaded or unreachable
// (worth a retry later) from a fault of the request or the data. A request
// given up by its own caller (context.Canceled) is neither.
func unavailable(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	switch errorCode(err) {
	case "SlowDown", "ServiceUnavailable", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError":
		return true
	}
	switch httpStatus(err) {
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	var netErr net.Error
	var quota ratelimit.QuotaExceededError
	// A body cut off midway is the connection's failure, as a reset is.
	return errors.As(err, &netErr) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &quota)
}

func errorCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}

func httpStatus(err error) int {
	var respErr *awshttp.ResponseError
	if errors.As(err, &respErr) {
		return respErr.HTTPStatusCode()
	}
	return 0
}
