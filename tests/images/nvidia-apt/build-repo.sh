#!/bin/sh
# Build the aistack TEST DOUBLE of NVIDIA's libnvidia-container apt repository.
#
# Runs inside a throwaway container of the kit's trixie base (tests/images/kit.py,
# artifact nvidia-apt) with this directory at /src (read-only) and the output
# directory at /out:
#
#   /out/stable/deb/<arch>/*.deb Packages Packages.gz Release InRelease Release.gpg
#   /out/gpgkey    ASCII-armored public half of a signing key generated here
#
# the layout of https://nvidia.github.io/libnvidia-container/ (a flat repository
# per architecture, `Suites: /`), so the nvidia_toolkit role installs from it
# exactly as from NVIDIA's repository or an operator's mirror of it. The secret
# key lives in a temporary GNUPGHOME and never leaves this container.
set -eu

VERSION="$1"
SRC=/src
OUT=/out
export DEBIAN_FRONTEND=noninteractive

apt-get update -q
apt-get install -y -q --no-install-recommends gnupg apt-utils

ARCH=$(dpkg --print-architecture)
REPO="$OUT/stable/deb/$ARCH"
STAGE=$(mktemp -d)
mkdir -p "$REPO"

# package NAME DEPENDS SUMMARY FILE:DEST...
package() {
    name="$1" depends="$2" summary="$3"
    shift 3
    root="$STAGE/$name"
    mkdir -p "$root/DEBIAN" "$root/usr/share/doc/$name"
    for spec in "$@"; do
        src="${spec%%:*}" dest="${spec#*:}"
        mkdir -p "$root$(dirname "$dest")"
        sed "s/@VERSION@/$VERSION/g" "$SRC/$src" > "$root$dest"
        chmod 0755 "$root$dest"
    done
    cat > "$root/usr/share/doc/$name/README.aistack-test-double" <<DOC
This package is an aistack TEST DOUBLE, not NVIDIA software.
It was built by the aistack.hosting test kit (tests/images/kit.py, artifact
nvidia-apt) so that the nvidia_toolkit role's install path can be tested on
machines that cannot reach NVIDIA's repository and have no GPU.
DOC
    {
        echo "Package: $name"
        echo "Version: $VERSION"
        echo "Architecture: $ARCH"
        echo "Maintainer: aistack.hosting test kit <kit@aistack.test>"
        [ -z "$depends" ] || echo "Depends: $depends"
        echo "Section: utils"
        echo "Priority: optional"
        echo "Homepage: https://github.com/NVIDIA/nvidia-container-toolkit"
        echo "Description: aistack TEST DOUBLE of NVIDIA's $name -- not NVIDIA software"
        echo " $summary"
        echo " Built by the aistack.hosting test kit for tests without NVIDIA's"
        echo " repository or a GPU; it implements only what the nvidia_toolkit role uses."
    } > "$root/DEBIAN/control"
    dpkg-deb --root-owner-group --build "$root" "$REPO/${name}_${VERSION}_${ARCH}.deb"
}

package libnvidia-container1 "" \
    "Stands in for the libnvidia-container library (ships no library)."
package libnvidia-container-tools "libnvidia-container1 (= $VERSION)" \
    "nvidia-container-cli answers --version and fails otherwise." \
    nvidia-container-cli:/usr/bin/nvidia-container-cli
package nvidia-container-toolkit-base "" \
    "nvidia-ctk (--version, cdi generate, cdi list) and an nvidia-container-runtime that execs runc." \
    nvidia-ctk:/usr/bin/nvidia-ctk nvidia-container-runtime:/usr/bin/nvidia-container-runtime
package nvidia-container-toolkit \
    "nvidia-container-toolkit-base (= $VERSION), libnvidia-container-tools (= $VERSION)" \
    "nvidia-container-runtime-hook refuses to inject GPUs, as on a host without one." \
    nvidia-container-runtime-hook:/usr/bin/nvidia-container-runtime-hook

cd "$REPO"
apt-ftparchive packages . > Packages
gzip -9nk Packages
apt-ftparchive \
    -o APT::FTPArchive::Release::Origin="aistack test kit" \
    -o APT::FTPArchive::Release::Label="aistack TEST DOUBLE of NVIDIA libnvidia-container" \
    release . > "$STAGE/Release"
mv "$STAGE/Release" Release

export GNUPGHOME="$STAGE/gnupg"
mkdir -m 0700 "$GNUPGHOME"
gpg --batch --quiet --pinentry-mode loopback --passphrase '' --quick-gen-key \
    "aistack test kit throwaway key (NVIDIA apt TEST DOUBLE) <kit@aistack.test>" ed25519 sign never
gpg --batch --yes --armor --detach-sign --output Release.gpg Release
gpg --batch --yes --clearsign --output InRelease Release
gpg --batch --armor --export > "$OUT/gpgkey"
gpg --batch --with-colons --fingerprint | awk -F: '/^fpr:/ { print $10; exit }' > "$OUT/gpgkey.fingerprint"

cd "$OUT"
find . -name '*.deb' | sort | xargs sha256sum > MANIFEST
chmod -R a+rX "$OUT"
rm -rf "$STAGE"
