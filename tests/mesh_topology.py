"""Mesh checks the geometry tests share (pure Python, for meshes given as verts + faces)."""


def shells(verts, faces) -> list[list[int]]:
    """Face indices grouped into connected pieces of surface (faces sharing a vertex)."""
    parent = list(range(len(verts)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for face in faces:
        for vertex in face[1:]:
            parent[root(vertex)] = root(face[0])
    groups: dict[int, list[int]] = {}
    for index, face in enumerate(faces):
        groups.setdefault(root(face[0]), []).append(index)
    return list(groups.values())


def shell_vertices(verts, faces) -> list[set[int]]:
    """The vertex indices of each connected piece; a vertex in no face is a piece of its own."""
    pieces = [{v for f in group for v in faces[f]} for group in shells(verts, faces)]
    used = set().union(*pieces) if pieces else set()
    return pieces + [{v} for v in range(len(verts)) if v not in used]
