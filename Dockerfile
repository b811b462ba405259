# syntax=docker/dockerfile:1
# signerd's container image: a static, non-root binary on distroless.
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t signerd:dev .
# Multi-arch: docker buildx build --platform linux/amd64,linux/arm64 ...
# (the builder cross-compiles; nothing runs under emulation).

# Pin by digest for reproducible builds (golang:1.26@sha256:...); the image
# must carry at least the Go version in go.mod.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG TARGETOS TARGETARCH
ARG VERSION=dev
# Static (CGO_ENABLED=0), no local paths (-trimpath), no symbol tables
# (-s -w), the version stamped for `signerd -version`.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/signerd ./cmd/signerd

# distroless static: no shell, no package manager; CA certificates (for
# Vault and the platform's HTTPS endpoint) and tzdata included.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/signerd /usr/local/bin/signerd
# nonroot, numerically, so Kubernetes' runAsNonRoot can check it.
USER 65532:65532
# gRPC, REST (+ /healthz, /readyz, /openapi.json), Prometheus /metrics.
EXPOSE 9090 8080 9100
ENTRYPOINT ["/usr/local/bin/signerd"]
