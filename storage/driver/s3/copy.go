package s3

import (
	"context"
	"fmt"
	"net/url"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// copyObject copies srcKey (size bytes) to dstKey inside the bucket. S3
// copies at most 5 GiB per request; larger objects go part by part.
func (d *Driver) copyObject(ctx context.Context, srcKey, dstKey string, size int64) error {
	if size <= d.maxCopySize {
		in := &s3.CopyObjectInput{
			Bucket:            d.bucket,
			Key:               aws.String(dstKey),
			CopySource:        aws.String(d.copySource(srcKey)),
			MetadataDirective: types.MetadataDirectiveCopy,
		}
		in.StorageClass, in.ServerSideEncryption, in.SSEKMSKeyId = d.storageOptions()
		_, err := d.client.CopyObject(ctx, in)
		return err
	}
	uploadID, err := d.createUpload(ctx, dstKey)
	if err != nil {
		return err
	}
	parts, err := d.copyParts(ctx, uploadID, dstKey, srcKey, 1, size)
	if err == nil {
		_, err = d.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
			Bucket: d.bucket, Key: aws.String(dstKey), UploadId: aws.String(uploadID),
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		})
	}
	if err != nil {
		_, _ = d.client.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{
			Bucket: d.bucket, Key: aws.String(dstKey), UploadId: aws.String(uploadID),
		})
	}
	return err
}

// copyParts copies the size bytes of srcKey into the upload as parts
// numbered from first on. Parts are of equal size, each at most a copy's
// limit; with that limit at 10 MiB or more, every part but the last then
// exceeds MinPartSize.
func (d *Driver) copyParts(ctx context.Context, uploadID, dstKey, srcKey string, first int32, size int64) ([]types.CompletedPart, error) {
	count := (size + d.maxCopySize - 1) / d.maxCopySize
	partSize := (size + count - 1) / count
	var parts []types.CompletedPart
	for off, n := int64(0), first; off < size; off, n = off+partSize, n+1 {
		end := min(off+partSize, size)
		out, err := d.client.UploadPartCopy(ctx, &s3.UploadPartCopyInput{
			Bucket: d.bucket, Key: aws.String(dstKey), UploadId: aws.String(uploadID), PartNumber: aws.Int32(n),
			CopySource:      aws.String(d.copySource(srcKey)),
			CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", off, end-1)),
		})
		if err != nil {
			return nil, err
		}
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(n), ETag: out.CopyPartResult.ETag})
	}
	return parts, nil
}

func (d *Driver) createUpload(ctx context.Context, key string) (string, error) {
	in := &s3.CreateMultipartUploadInput{Bucket: d.bucket, Key: aws.String(key), ContentType: aws.String("application/octet-stream")}
	in.StorageClass, in.ServerSideEncryption, in.SSEKMSKeyId = d.storageOptions()
	out, err := d.client.CreateMultipartUpload(ctx, in)
	if err != nil {
		return "", err
	}
	return aws.ToString(out.UploadId), nil
}

// copySource names a key of this bucket as CopySource wants it: URL-escaped.
func (d *Driver) copySource(key string) string {
	return url.PathEscape(d.cfg.Bucket) + "/" + (&url.URL{Path: key}).EscapedPath()
}
