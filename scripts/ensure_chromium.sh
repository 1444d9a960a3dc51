#!/usr/bin/env bash
# The browser test drives Debian's Chromium (no browser download): install it when missing.
# CONTACT_IMPORT_CHROMIUM names another Chromium binary and skips the install.
set -euo pipefail
if [[ -n "${CONTACT_IMPORT_CHROMIUM:-}" ]]; then
  exit 0
fi
# fonts-noto-cjk: the page's zh-TW screenshots show boxes without a Chinese font
if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver && -e /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ]]; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "ensure_chromium: /usr/bin/chromium is missing and this is not a Debian-like system;" \
       "install Chromium and set CONTACT_IMPORT_CHROMIUM to its binary" >&2
  exit 1
fi
as_root=()
if [[ $(id -u) -ne 0 ]]; then
  if ! sudo -n true 2>/dev/null; then
    echo "ensure_chromium: installing chromium needs root; run: sudo apt-get install -y chromium chromium-driver" >&2
    exit 1
  fi
  as_root=(sudo -n)
fi
export DEBIAN_FRONTEND=noninteractive
echo "ensure_chromium: installing Debian's chromium, chromium-driver and fonts-noto-cjk (browser test)"
if ! "${as_root[@]}" apt-get install -y -q chromium chromium-driver fonts-noto-cjk >/dev/null; then
  "${as_root[@]}" apt-get update -q >/dev/null
  "${as_root[@]}" apt-get install -y -q chromium chromium-driver fonts-noto-cjk >/dev/null
fi
