"""JSON schemas for the two KEDA kinds the manifests use, written here from the field sets of
KEDA's published CRDs (keda.sh_scaledobjects.yaml and keda.sh_triggerauthentications.yaml,
keda.sh/v1alpha1) and its ScaledObject specification (docs 2.18). The CRD files themselves are
not in any package this project can install offline; these schemas carry their field names,
types and required fields, and reject any field the CRDs do not have (as the API server does
with strict field validation)."""

from typing import Any


def _object(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


INT = {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
STRING = {"type": "string"}
STRINGS = {"type": "object", "additionalProperties": STRING}
OBJECT_META = {"type": "object"}  # checked by Kubernetes' own ObjectMeta schema elsewhere

_HPA_RULES = _object(
    {
        "policies": {
            "type": "array",
            "items": _object(
                {"type": STRING, "value": INT, "periodSeconds": INT},
                ("type", "value", "periodSeconds"),
            ),
        },
        "selectPolicy": STRING,
        "stabilizationWindowSeconds": INT,
        "tolerance": {"type": ["number", "string"]},
    }
)

SCALED_OBJECT = _object(
    {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": OBJECT_META,
        "spec": _object(
            {
                "scaleTargetRef": _object(
                    {
                        "apiVersion": STRING,
                        "kind": STRING,
                        "name": STRING,
                        "envSourceContainerName": STRING,
                    },
                    ("name",),
                ),
                "pollingInterval": INT,
                "cooldownPeriod": INT,
                "initialCooldownPeriod": INT,
                "idleReplicaCount": INT,
                "minReplicaCount": INT,
                "maxReplicaCount": INT,
                "fallback": _object(
                    {
                        "failureThreshold": INT,
                        "replicas": INT,
                        "behavior": {
                            "enum": [
                                "static",
                                "currentReplicas",
                                "currentReplicasIfHigher",
                                "currentReplicasIfLower",
                            ]
                        },
                    },
                    ("failureThreshold", "replicas"),
                ),
                "advanced": _object(
                    {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "horizontalPodAutoscalerConfig": _object(
                            {
                                "name": STRING,
                                "behavior": _object(
                                    {"scaleUp": _HPA_RULES, "scaleDown": _HPA_RULES}
                                ),
                            }
                        ),
                        "scalingModifiers": _object(
                            {
                                "target": STRING,
                                "activationTarget": STRING,
                                "metricType": STRING,
                                "formula": STRING,
                            }
                        ),
                    }
                ),
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": _object(
                        {
                            "type": STRING,
                            "name": STRING,
                            "metadata": STRINGS,  # every value a string, as in the CRD
                            "useCachedMetrics": {"type": "boolean"},
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "authenticationRef": _object(
                                {
                                    "name": STRING,
                                    "kind": {
                                        "enum": [
                                            "TriggerAuthentication",
                                            "ClusterTriggerAuthentication",
                                        ]
                                    },
                                },
                                ("name",),
                            ),
                        },
                        ("type", "metadata"),
                    ),
                },
            },
            ("scaleTargetRef", "triggers"),
        ),
    },
    ("apiVersion", "kind", "metadata", "spec"),
)

_KEY_REFS = {
    "type": "array",
    "items": _object(
        {"parameter": STRING, "name": STRING, "key": STRING}, ("parameter", "name", "key")
    ),
}

TRIGGER_AUTHENTICATION = _object(
    {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "TriggerAuthentication"},
        "metadata": OBJECT_META,
        "spec": _object(
            {
                "secretTargetRef": _KEY_REFS,
                "configMapTargetRef": _KEY_REFS,
                "env": {
                    "type": "array",
                    "items": _object(
                        {"parameter": STRING, "name": STRING, "containerName": STRING},
                        ("parameter", "name"),
                    ),
                },
                # Identity providers and secret stores: accepted as objects, not used here.
                "podIdentity": {"type": "object"},
                "hashiCorpVault": {"type": "object"},
                "azureKeyVault": {"type": "object"},
                "awsSecretManager": {"type": "object"},
                "gcpSecretManager": {"type": "object"},
                "boundServiceAccountToken": {"type": "array"},
            }
        ),
    },
    ("apiVersion", "kind", "metadata", "spec"),
)

SCHEMAS = {"ScaledObject": SCALED_OBJECT, "TriggerAuthentication": TRIGGER_AUTHENTICATION}
