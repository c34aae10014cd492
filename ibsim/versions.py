"""TWS API server versions that change the layout of a message ibsim sends.

ibsim speaks every version from :data:`MIN_VERSION` to :data:`MAX_VERSION`: the handshake
settles on ``min(client max, MAX_VERSION)`` and every encoder takes that version. Names follow
the official client's ``server_versions.py`` (without its ``MIN_SERVER_VER_`` prefix); only
the gates inside ibsim's range that touch a message ibsim sends are listed.
"""

from __future__ import annotations

MIN_VERSION = 157
"""REPLACE_FA_END: the oldest version ibsim speaks (ib_async's own minimum)."""
MAX_VERSION = 178
"""PENDING_PRICE_REVISION: above it ERROR_TIME (194), HISTORICAL_DATA_END (196) and protobuf
(201) change formats ibsim does not implement."""

DURATION = 158
"""openOrder carries ``duration``."""
POST_TO_ATS = 160
"""openOrder carries ``postToAts``."""
AUTO_CANCEL_PARENT = 162
"""openOrder carries ``autoCancelParent``."""
FRACTIONAL_SIZE_SUPPORT = 163
"""contractDetails carries ``sizeMinTick`` (this version only: 164 replaces it)."""
SIZE_RULES = 164
"""contractDetails drops its version field and mdSizeMultiplier and carries minSize,
sizeIncrement and suggestedSizeIncrement."""
ADVANCED_ORDER_REJECT = 166
"""error messages carry ``advancedOrderRejectJson``."""
MANUAL_ORDER_TIME = 169
"""cancelOrder (client to server) carries ``manualOrderCancelTime``."""
PEGBEST_PEGMID_OFFSETS = 170
"""openOrder and completedOrder carry minTradeQty, minCompeteSize, competeAgainstBestOffset,
midOffsetAtWhole and midOffsetAtHalf."""
BOND_ISSUERID = 176
"""reqContractDetails (client to server) carries ``issuerId``."""
FA_PROFILE_DESUPPORT = 177
"""openOrder and completedOrder no longer carry ``faProfile``."""
PENDING_PRICE_REVISION = 178
"""execDetails carries ``pendingPriceRevision``."""

SUPPORTED = range(MIN_VERSION, MAX_VERSION + 1)
"""Every version ibsim can encode for."""
