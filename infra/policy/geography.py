"""Which cloud locations belong to which roomtrust region: the policy's own table (IN-01, DM-07, MT-02).

The components keep their own lists of allowed locations; the policy does not trust them and
checks every provider and every `location`/`region` input against this table instead.
"""

from __future__ import annotations

# service -> cloud provider package that must create every resource of that service
CLOUD_OF_SERVICE = {"dm": "azure-native", "meeting": "aws"}
CLOUD_NAME = {"dm": "azure", "meeting": "aws"}

# the exact region sets of the claims (IN-01, DM-07, MT-01)
REGIONS = {"dm": ("us", "eu", "au"), "meeting": ("na", "sa", "eu", "asia")}

GEOGRAPHY: dict[tuple[str, str], frozenset[str]] = {
    ("dm", "us"): frozenset(
        {
            "eastus",
            "eastus2",
            "centralus",
            "northcentralus",
            "southcentralus",
            "westcentralus",
            "westus",
            "westus2",
            "westus3",
        }
    ),
    ("dm", "eu"): frozenset(
        {
            "westeurope",
            "northeurope",
            "francecentral",
            "francesouth",
            "germanywestcentral",
            "germanynorth",
            "swedencentral",
            "swedensouth",
            "norwayeast",
            "norwaywest",
            "switzerlandnorth",
            "switzerlandwest",
            "polandcentral",
            "italynorth",
            "spaincentral",
        }
    ),
    ("dm", "au"): frozenset(
        {"australiaeast", "australiasoutheast", "australiacentral", "australiacentral2"}
    ),
    ("meeting", "na"): frozenset(
        {"us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "ca-west-1"}
    ),
    ("meeting", "sa"): frozenset({"sa-east-1"}),
    ("meeting", "eu"): frozenset(
        {
            "eu-central-1",
            "eu-central-2",
            "eu-west-1",
            "eu-west-2",
            "eu-west-3",
            "eu-north-1",
            "eu-south-1",
            "eu-south-2",
        }
    ),
    # Asia only: ap-southeast-2 and ap-southeast-4 are in Australia
    ("meeting", "asia"): frozenset(
        {
            "ap-east-1",
            "ap-south-1",
            "ap-south-2",
            "ap-northeast-1",
            "ap-northeast-2",
            "ap-northeast-3",
            "ap-southeast-1",
            "ap-southeast-3",
            "ap-southeast-5",
            "ap-southeast-7",
        }
    ),
}


def normalise(location: str) -> str:
    """Azure accepts `West Europe` and `westeurope` alike."""
    return location.replace(" ", "").lower()


def allowed(service: str | None, region: str | None) -> frozenset[str]:
    return GEOGRAPHY.get((service or "", region or ""), frozenset())
