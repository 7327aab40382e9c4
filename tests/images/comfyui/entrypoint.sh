#!/bin/bash
# aistack test kit: the start script of yanwk/comfyui-boot (runner-scripts/
# entrypoint.sh), same steps and paths, starting the kit's ComfyUI TEST
# DOUBLE: on first start the ComfyUI bundle of the image is copied from
# /default-comfyui-bundle/ComfyUI to /root/ComfyUI (never overwriting what is
# there, e.g. mounted models/custom_nodes/input/output/user volumes); the
# user's set-proxy.sh and pre-start.sh in /root/user-scripts are sourced;
# then `python3 ./ComfyUI/main.py --listen --port 8188 ${CLI_ARGS}` runs
# (later --listen/--port arguments in CLI_ARGS win, as with argparse upstream).
set -e

echo "########################################"
echo "[WARN] aistack test double of ComfyUI (not ComfyUI; no inference)"

cd /root
if [ ! -f "/root/user-scripts/set-proxy.sh" ] ; then
    mkdir -p /root/user-scripts
    cp /runner-scripts/set-proxy.sh.example /root/user-scripts/set-proxy.sh
else
    echo "[INFO] Running set-proxy script..."
    chmod +x /root/user-scripts/set-proxy.sh
    source /root/user-scripts/set-proxy.sh
fi ;

cd /root
if [ ! -f "/root/ComfyUI/main.py" ] ; then
    mkdir -p /root/ComfyUI
    if cp --archive --no-clobber "/default-comfyui-bundle/ComfyUI/." "/root/ComfyUI/" ; then
        echo "[INFO] Setting up ComfyUI..."
        echo "[INFO] Using image-bundled ComfyUI (copied to workdir)."
    else
        echo "[ERROR] Failed to copy ComfyUI bundle to '/root/ComfyUI'" >&2
        exit 1
    fi
else
    echo "[INFO] Using existing ComfyUI in user storage..."
fi

cd /root
if [ ! -f "/root/user-scripts/pre-start.sh" ] ; then
    mkdir -p /root/user-scripts
    cp /runner-scripts/pre-start.sh.example /root/user-scripts/pre-start.sh
else
    echo "[INFO] Running pre-start script..."
    chmod +x /root/user-scripts/pre-start.sh
    source /root/user-scripts/pre-start.sh
fi ;

echo "[INFO] Starting ComfyUI..."
echo "########################################"

export PYTHONPYCACHEPREFIX="/root/.cache/pycache"
export PIP_USER=true
export PATH="${PATH}:/root/.local/bin"
export PIP_ROOT_USER_ACTION=ignore

cd /root

exec python3 ./ComfyUI/main.py --listen --port 8188 ${CLI_ARGS}
