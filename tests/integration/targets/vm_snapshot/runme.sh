#!/usr/bin/env bash
# vm_snapshot on a real qemu:///system: libvirt-up.sh brings up libvirtd and the guest boot
# files, this script defines a TCG guest on a qcow2 disk, main.yml does the rest; everything
# this script started is removed on exit.
set -euo pipefail
# ansible.cfg's inventory setting can make ansible run executable files as inventory scripts
case "${1:-}" in --list|--host) echo "{}"; exit 0;; esac
# ansible-test runs a copy of this target elsewhere: find the collection through its search path
testbed=
IFS=: read -ra paths <<<"${ANSIBLE_COLLECTIONS_PATH:-}"
for p in "${paths[@]}" "$(cd ../../../.. && pwd)/../../.."; do
  if [ -n "$p" ] && [ -f "$p/ansible_collections/vman/lifecycle/tests/testbed/libvirt-up.sh" ]; then
    testbed=$p/ansible_collections/vman/lifecycle/tests/testbed
    break
  fi
done
[ -n "$testbed" ] || { echo "runme.sh: cannot find tests/testbed of vman.lifecycle" >&2; exit 1; }
name=vman-snaptest-it
images=/var/lib/libvirt/images/vman-snaptest
disk=$images/$name.qcow2
started=0
virsh -c qemu:///system version >/dev/null 2>&1 || started=1
cleanup() {
  virsh -c qemu:///system destroy "$name" >/dev/null 2>&1 || true
  virsh -c qemu:///system undefine "$name" --snapshots-metadata >/dev/null 2>&1 || true
  rm -f "$disk" "$disk.src" "$images/$name.xml"
  if [ "$started" = 1 ]; then bash "$testbed/libvirt-down.sh"; fi
}
trap cleanup EXIT
out=$(bash "$testbed/libvirt-up.sh")
kernel=$(sed -n 's/^kernel=//p' <<<"$out")
initrd=$(sed -n 's/^initrd=//p' <<<"$out")
mkdir -p "$images"
# first 16 bytes of the disk are the content the test follows
printf 'VMAN-ORIGINAL-01' > "$disk.src"
truncate -s 1M "$disk.src"
qemu-img convert -f raw -O qcow2 "$disk.src" "$disk"
cat > "$images/$name.xml" <<XML
<domain type='qemu'>
  <name>$name</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$kernel</kernel>
    <initrd>$initrd</initrd>
    <cmdline>console=ttyS0 quiet panic=-1</cmdline>
  </os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$disk'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <memballoon model='none'/>
  </devices>
</domain>
XML
virsh -c qemu:///system define "$images/$name.xml" >/dev/null
python=${ANSIBLE_TEST_PYTHON_INTERPRETER:-$(command -v python3)}
ansible-playbook -i localhost, -c local -e "ansible_python_interpreter=$python" \
  -e "domain=$name disk=$disk" main.yml "$@"
