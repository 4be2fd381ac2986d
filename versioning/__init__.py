"""versioning: loxo's domain of repos, branches, commits, trees and content.

This package knows nothing about HTTP or S3. Glossary:

repo      a named collection of branches that share history and content.
branch    a movable name for a commit (its head); heads move by compare-and-set.
commit    an immutable, content-addressed record: parents, tree root, author,
          message, time and origin. Its id is 32 hex characters.
tree      the map path -> ObjectEntry of one commit, stored as a prolly tree:
          content-addressed pages whose boundaries are a pure function of the
          keys, so equal maps have equal roots and unchanged subtrees are shared.
node      one page of a tree (a leaf of entries or an internal page of children).
entry     what a tree stores for one path: size, content id, ETag, content type,
          user metadata, checksums, last modified, version.
content   an object body: a manifest listing its chunks in order.
chunk     a content-defined piece of a body, named by its BLAKE3 hash and
          stored once across files, commits and repos.
snapshot  a read-only view of a repo at one commit.
"""
