# Sourced by the bench scripts: prints where a measurement comes from, so it can be traced and
# rerun. Run from the repository root.
echo "== provenance"
echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "rustc:   $(rustc -V)"
echo "cargo:   $(cargo -V)"
echo "kernel:  $(uname -r)"
echo "cpu:     $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') ($(nproc) cpus online)"
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg)"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain -- src benches examples Cargo.toml Cargo.lock 2>/dev/null)" ]; then
    echo "commit:  $commit + uncommitted changes to src/benches/examples/Cargo:"
    git status --porcelain -- src benches examples Cargo.toml Cargo.lock | sed 's/^/           /'
else
    echo "commit:  $commit"
fi
