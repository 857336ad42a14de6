"""The joint keypoint space of WS-CDA: one heatmap channel per joint that a human or an animal can have.

WS-CDA (Cao et al., "Cross-Domain Adaptation for Animal Pose Estimation", ICCV 2019) trains a single
keypoint estimator on labelled humans and labelled animals. The estimator predicts over a joint space
that covers both domains; each sample then supervises only the channels its own domain has.

Choice made here (the paper leaves the construction open): the joint space is the **union** of

1. every joint of the animal schema, in the animal schema's order and under its names — the animal
   channels come first, so channel ``j < K_animal`` *is* animal joint ``j`` and an animal prediction is
   read off the first ``K_animal`` channels without any table; then
2. every human joint that the explicit human→animal mapping (``configs/keypoints/mappings``) does not
   pair with an animal joint, in the human schema's order, under the name ``"<human>:<joint>"``.

A human joint that the mapping pairs with an animal joint shares that animal channel (the mapped
correspondence is what transfers human pose knowledge to animals). With the shipped
``coco__animalpose`` table every COCO joint has a counterpart, so the ``coco``/``animalpose`` space is
exactly the 20 Animal-Pose joints; humans supervise 17 of them and never Throat, TailBase or Withers.

Per-domain masks say which channels a domain can label at all; per-sample target weights additionally
drop joints that a given sample leaves unlabelled (visibility 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from animalpose.keypoints import KeypointSchema, SchemaMapping, load_mapping, load_schema, schema_from_names

HUMAN = "human"
ANIMAL = "animal"
DOMAINS = (HUMAN, ANIMAL)


@dataclass(frozen=True, eq=False)
class JointSpace:
    """A joint keypoint space over a human schema and an animal schema.

    Attributes:
        human: name of the human schema (e.g. ``"coco"``).
        animal: name of the animal schema (e.g. ``"animalpose"``).
        joints: names of the J joint-space channels, animal joints first.
        human_index: (K_human,) int array, joint-space channel of each human joint.
        animal_index: (K_animal,) int array, joint-space channel of each animal joint (= arange(K_animal)).
    """

    human: str
    animal: str
    joints: tuple[str, ...]
    human_index: np.ndarray
    animal_index: np.ndarray

    @property
    def num_joints(self) -> int:
        """J, the number of joint-space channels."""
        return len(self.joints)

    def _index(self, domain: str) -> np.ndarray:
        if domain == HUMAN:
            return self.human_index
        if domain == ANIMAL:
            return self.animal_index
        raise ValueError(f"unknown domain {domain!r} (expected one of {DOMAINS})")

    def domain_mask(self, domain: str) -> np.ndarray:
        """(J,) bool: the joint-space channels that ``domain`` can label."""
        mask = np.zeros(self.num_joints, dtype=bool)
        mask[self._index(domain)] = True
        return mask

    def lift(self, keypoints: np.ndarray, domain: str) -> np.ndarray:
        """Move keypoints of ``domain``'s schema into the joint space.

        Args:
            keypoints: (..., K_domain, C) array (C = 3 for x, y, visibility).

        Returns:
            (..., J, C) array of the same dtype; channels the domain lacks are all zero (visibility 0).
        """
        index = self._index(domain)
        keypoints = np.asarray(keypoints)
        if keypoints.ndim < 2 or keypoints.shape[-2] != len(index):
            raise ValueError(
                f"expected (..., {len(index)}, C) {domain} keypoints "
                f"({self.human if domain == HUMAN else self.animal}), got shape {keypoints.shape}"
            )
        out = np.zeros((*keypoints.shape[:-2], self.num_joints, keypoints.shape[-1]), dtype=keypoints.dtype)
        out[..., index, :] = keypoints
        return out

    def project(self, joint_keypoints: np.ndarray, domain: str) -> np.ndarray:
        """Inverse of :meth:`lift`: (..., J, C) joint-space array -> (..., K_domain, C)."""
        joint_keypoints = np.asarray(joint_keypoints)
        if joint_keypoints.ndim < 2 or joint_keypoints.shape[-2] != self.num_joints:
            raise ValueError(f"expected (..., {self.num_joints}, C) joint-space keypoints, got {joint_keypoints.shape}")
        return joint_keypoints[..., self._index(domain), :]

    def target_weights(self, keypoints: np.ndarray, domain: str) -> np.ndarray:
        """Per-joint loss weights of a sample in the joint space.

        Args:
            keypoints: (..., K_domain, 3) keypoints of ``domain``'s schema (visibility in the last column).

        Returns:
            (..., J) float32: 1 where the domain has the joint and the sample labels it (visibility > 0),
            0 elsewhere — joints the domain lacks are always 0.
        """
        lifted = self.lift(keypoints, domain)
        return (lifted[..., 2] > 0).astype(np.float32)

    def schema(self) -> KeypointSchema:
        """The joint space as a :class:`KeypointSchema` (flip pairs derived from the names)."""
        return schema_from_names(f"wscda_{self.human}_{self.animal}", list(self.joints))


def build_joint_space(human: str = "coco", animal: str = "animalpose") -> JointSpace:
    """The joint space of ``human`` and ``animal`` from the explicit ``human``↔``animal`` mapping table."""
    return joint_space_from_mapping(load_schema(human), load_schema(animal), load_mapping(human, animal))


def joint_space_from_mapping(
    human_schema: KeypointSchema, animal_schema: KeypointSchema, mapping: SchemaMapping
) -> JointSpace:
    """The union joint space (animal joints, then unmapped human joints) of two schemas and their mapping.

    ``mapping`` goes from the human schema to the animal schema (``mapping.source == human_schema.name``).
    """
    if (mapping.source, mapping.target) != (human_schema.name, animal_schema.name):
        raise ValueError(
            f"mapping {mapping.source}->{mapping.target} does not map {human_schema.name}->{animal_schema.name}"
        )
    paired = dict(mapping.pairs)  # human index -> animal index
    joints = list(animal_schema.joints)
    human_index = np.empty(human_schema.num_joints, dtype=np.int64)
    for k, name in enumerate(human_schema.joints):
        if k in paired:
            human_index[k] = paired[k]
        else:
            human_index[k] = len(joints)
            joints.append(f"{human_schema.name}:{name}")
    return JointSpace(
        human=human_schema.name,
        animal=animal_schema.name,
        joints=tuple(joints),
        human_index=human_index,
        animal_index=np.arange(animal_schema.num_joints, dtype=np.int64),
    )
