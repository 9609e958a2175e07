"""Share, unshare and copy petal software volumes (EBS snapshots); publishing them to a
registry is petal.registry.publish.

What AWS allows decides most of the logic here (../docs/SHARING.md explains it to users):

- Sharing is the snapshot's `createVolumePermission` attribute: account ids, or the group
  `all` for public.
- Only unencrypted snapshots can be public. A snapshot encrypted with the AWS managed
  key (`aws/ebs`) cannot be shared with anyone, because that key's policy cannot be
  changed; one encrypted with a customer managed key can, once the key policy lets the
  other accounts use the key. petal never edits key policies: it prints the statement.
- Snapshot block public access is a per-region account setting that stops new (or all)
  public sharing.
- Tags are invisible to other accounts; the Description (petal.snapshot_description)
  carries what identifies a petal snapshot. CopySnapshot runs in the destination region
  and copies neither tags nor, unless given, the Description.

Every function takes boto3 clients as arguments, so the CLI, the Lambda handlers and
the tests (moto, or small fakes where moto falls short) share one code path. Failures
are `SharingError`s whose message says what to do; `exit_code` is the CLI's.
"""
