#!/bin/sh
# Builds target/debian/mychat_<version>_amd64.deb: the static executable,
# the hardened systemd unit, /etc/mychat/config.toml as a conffile, and
# maintainer scripts that create the mychat system user and
# /var/lib/mychat. Needs dpkg-deb.
#
# MYCHAT_STATIC_BIN=path uses an executable already built by
# packaging/build-static.sh instead of building it.
set -eu
cd "$(dirname "$0")/.."

VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
BIN=${MYCHAT_STATIC_BIN:-}
if [ -z "$BIN" ]; then
    BIN=$(packaging/build-static.sh | tail -n 1)
fi

OUT=target/debian
DEB="$OUT/mychat_${VERSION}_amd64.deb"
mkdir -p "$OUT"
# A private staging dir and an atomic rename: builds running at the same
# time do not trip over each other.
STAGE=$(mktemp -d "$OUT/.build.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
ROOT="$STAGE/root"
mkdir -p "$ROOT/DEBIAN"
chmod 0755 "$STAGE" "$ROOT" "$ROOT/DEBIAN"

install -D -m 0755 "$BIN" "$ROOT/usr/bin/mychat"
# root:mychat 0640 is set by postinst (dpkg-statoverride): the group does
# not exist when the package is built.
install -D -m 0640 packaging/config.toml "$ROOT/etc/mychat/config.toml"
install -D -m 0644 systemd/mychat.service "$ROOT/usr/lib/systemd/system/mychat.service"
install -D -m 0644 README.md "$ROOT/usr/share/doc/mychat/README.md"
install -D -m 0644 config.example.toml "$ROOT/usr/share/doc/mychat/config.example.toml"
install -D -m 0644 packaging/debian/copyright "$ROOT/usr/share/doc/mychat/copyright"

for script in postinst prerm postrm; do
    install -m 0755 "packaging/debian/$script" "$ROOT/DEBIAN/$script"
done
install -m 0644 packaging/debian/conffiles "$ROOT/DEBIAN/conffiles"
SIZE=$(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@SIZE@/$SIZE/" packaging/debian/control \
    > "$ROOT/DEBIAN/control"

dpkg-deb --root-owner-group -Zxz --build "$ROOT" "$STAGE/mychat.deb" >/dev/null
mv -f "$STAGE/mychat.deb" "$DEB"
echo "$DEB"
