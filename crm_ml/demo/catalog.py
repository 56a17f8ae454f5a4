"""The synthetic retailer's products, stores and loyalty tiers.

These are shared by every customer chunk and loaded once. Products are sorted by
price within each category, so a customer's spend level can pick cheaper or
dearer items by position (see :mod:`crm_ml.demo.orders`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from crm_ml.demo.names import NamePools

CATEGORIES = ("maternity_baby", "beauty", "food", "apparel", "electronics", "home")

# (item, typical price in CNY, brands that sell it)
_ZH_ITEMS: dict[str, tuple[tuple[str, float, str], ...]] = {
    "maternity_baby": (
        ("婴儿配方奶粉 3段 800g", 298, "飞鹤 君乐宝 爱他美 惠氏 美赞臣"),
        ("纸尿裤 L码 54片", 129, "帮宝适 好奇 花王 大王"),
        ("拉拉裤 XL码 42片", 139, "帮宝适 好奇 babycare"),
        ("婴儿湿巾 80抽×6包", 49, "babycare 全棉时代 好奇"),
        ("宽口径玻璃奶瓶 240ml", 119, "贝亲 可优比 NUK"),
        ("婴儿洗发沐浴二合一", 69, "强生 贝亲 红色小象"),
        ("婴儿米粉 1段 225g", 58, "亨氏 嘉宝 英氏"),
        ("婴儿推车 轻便可折叠", 899, "好孩子 babycare"),
        ("儿童安全座椅", 1299, "好孩子 宝得适"),
    ),
    "beauty": (
        ("双抗精华液 30ml", 399, "珀莱雅 欧莱雅 兰蔻 雅诗兰黛"),
        ("舒敏保湿特护霜 50g", 268, "薇诺娜 玉兰油 自然堂"),
        ("补水面膜 10片", 99, "百雀羚 自然堂 珀莱雅"),
        ("氨基酸洁面乳 120g", 79, "珀莱雅 百雀羚 欧莱雅"),
        ("清透防晒霜 SPF50+", 139, "安热沙 薇诺娜 玉兰油"),
        ("丝绒哑光口红", 169, "完美日记 花西子 兰蔻"),
        ("持妆粉底液 30ml", 259, "花西子 雅诗兰黛 完美日记"),
        ("抗皱紧致眼霜 15ml", 359, "雅诗兰黛 兰蔻 欧莱雅"),
        ("温和卸妆水 400ml", 89, "欧莱雅 百雀羚"),
    ),
    "food": (
        ("每日坚果 30包", 129, "三只松鼠 良品铺子 百草味 洽洽"),
        ("纯牛奶 250ml×12盒", 59, "伊利 蒙牛 认养一头牛"),
        ("东北五常大米 5kg", 69, "金龙鱼 福临门"),
        ("花生油 5L", 99, "金龙鱼 鲁花 福临门"),
        ("零食大礼包", 99, "三只松鼠 良品铺子 百草味"),
        ("风味酸奶 200g×10", 49, "伊利 蒙牛 君乐宝"),
        ("焦糖瓜子 500g", 29, "洽洽 三只松鼠"),
        ("天然矿泉水 550ml×24", 36, "农夫山泉 怡宝"),
        ("糕点礼盒", 168, "稻香村 良品铺子"),
    ),
    "apparel": (
        ("纯棉短袖T恤", 99, "森马 海澜之家 以纯 李宁"),
        ("轻薄羽绒服", 899, "波司登 雪中飞 太平鸟"),
        ("缓震跑步鞋", 399, "李宁 安踏 特步"),
        ("直筒牛仔裤", 259, "太平鸟 森马 江南布衣"),
        ("连帽卫衣", 199, "李宁 安踏 太平鸟"),
        ("法式碎花连衣裙", 329, "太平鸟 江南布衣 以纯"),
        ("针织开衫", 239, "江南布衣 海澜之家"),
        ("防晒衣 UPF50+", 169, "蕉下 安踏"),
        ("棉袜 5双装", 39, "南极人 浪莎"),
    ),
    "electronics": (
        ("真无线蓝牙耳机", 299, "华为 小米 漫步者 OPPO"),
        ("充电宝 20000mAh", 149, "小米 倍思 绿联"),
        ("智能手环", 249, "华为 小米 荣耀"),
        ("65W 氮化镓快充充电器", 99, "倍思 绿联 公牛"),
        ("快充数据线 1m", 39, "绿联 倍思 公牛"),
        ("无线静音鼠标", 129, "罗技 小米"),
        ("智能音箱", 299, "小米 华为 天猫精灵"),
        ("平板电脑 11英寸", 1999, "华为 小米 荣耀"),
        ("5G 智能手机", 2999, "华为 小米 荣耀 OPPO vivo"),
    ),
    "home": (
        ("全棉四件套 1.8m", 399, "水星家纺 罗莱 富安娜"),
        ("乳胶枕", 199, "南极人 富安娜 网易严选"),
        ("桑蚕丝被", 899, "罗莱 水星家纺"),
        ("麦饭石不粘炒锅", 199, "苏泊尔 双立人 爱仕达"),
        ("智能电饭煲 4L", 399, "美的 苏泊尔 九阳"),
        ("316不锈钢保温杯", 129, "膳魔师 乐扣乐扣 苏泊尔"),
        ("透明收纳箱 3个装", 59, "网易严选 爱丽思"),
        ("纯棉毛巾 3条装", 49, "洁丽雅 金号"),
        ("空气炸锅 5L", 299, "美的 九阳 小熊"),
    ),
}

_EN_ITEMS: dict[str, tuple[tuple[str, float, str], ...]] = {
    "maternity_baby": (
        ("Infant Formula Stage 3 800g", 298, "Aptamil|Kendamil|SMA"),
        ("Nappies Size 4 x54", 129, "Pampers|Huggies"),
        ("Baby Wipes 6 x 80", 49, "WaterWipes|Pampers"),
        ("Anti-colic Bottle 260ml", 119, "Tommee Tippee|MAM"),
        ("Lightweight Pushchair", 899, "Joie|Silver Cross"),
        ("Baby Porridge 200g", 58, "Ella's Kitchen|HiPP"),
    ),
    "beauty": (
        ("Vitamin C Serum 30ml", 399, "The Ordinary|No7|Clinique"),
        ("Hydrating Moisturiser 50ml", 268, "CeraVe|No7|Olay"),
        ("Sheet Masks x10", 99, "Garnier|Olay"),
        ("Gentle Cleanser 236ml", 79, "CeraVe|Simple"),
        ("Sun Cream SPF50", 139, "La Roche-Posay|Garnier"),
        ("Matte Lipstick", 169, "MAC|Charlotte Tilbury|Rimmel"),
    ),
    "food": (
        ("Mixed Nuts 30 packs", 129, "KP|Graze"),
        ("Semi-skimmed Milk 12 x 1L", 59, "Arla|Cravendale"),
        ("Basmati Rice 5kg", 69, "Tilda|Veetee"),
        ("Rapeseed Oil 5L", 99, "Crisp 'n Dry|Borderfields"),
        ("Greek Yoghurt 10 pack", 49, "Fage|Yeo Valley"),
        ("Biscuit Gift Tin", 168, "Walkers|Fortnum's"),
    ),
    "apparel": (
        ("Cotton T-shirt", 99, "Next|Uniqlo|M&S"),
        ("Padded Winter Coat", 899, "North Face|Barbour"),
        ("Running Trainers", 399, "Nike|Adidas|New Balance"),
        ("Straight Jeans", 259, "Levi's|Next"),
        ("Hooded Sweatshirt", 199, "Adidas|Nike"),
        ("Socks 5 pack", 39, "M&S|Next"),
    ),
    "electronics": (
        ("Wireless Earbuds", 299, "Sony|JBL|Samsung"),
        ("Power Bank 20000mAh", 149, "Anker|Belkin"),
        ("Fitness Tracker", 249, "Fitbit|Garmin"),
        ("65W USB-C Charger", 99, "Anker|Belkin"),
        ("Smart Speaker", 299, "Amazon|Google|Sonos"),
        ("11-inch Tablet", 1999, "Samsung|Lenovo"),
    ),
    "home": (
        ("Cotton Duvet Set Double", 399, "Dunelm|John Lewis"),
        ("Memory Foam Pillow", 199, "Silentnight|Dunelm"),
        ("Non-stick Frying Pan", 199, "Tefal|Le Creuset"),
        ("Rice Cooker 1.8L", 399, "Russell Hobbs|Tefal"),
        ("Insulated Bottle 500ml", 129, "Chilly's|Stanley"),
        ("Air Fryer 5L", 299, "Ninja|Tower"),
    ),
}

#: (tier id, name, Chinese label, English label, level, rolling 12-month spend in CNY).
TIERS = (
    ("T0", "classic", "普通会员", "Classic", 0, 0.0),
    ("T1", "silver", "银卡会员", "Silver", 1, 1_000.0),
    ("T2", "gold", "金卡会员", "Gold", 2, 3_000.0),
    ("T3", "diamond", "钻石会员", "Diamond", 3, 8_000.0),
)


@dataclass(frozen=True)
class Catalog:
    """Products, stores and tiers shared by every customer.

    Attributes
    ----------
    products : pandas.DataFrame
        Rows of the ``product`` table, sorted by category then price.
    category_start : numpy.ndarray
        Position of each category's first product in ``products`` (length 7, last = total).
    price : numpy.ndarray
        ``products.list_price`` as an array.
    stores : pandas.DataFrame
        Rows of the ``store_location`` table.
    store_city : numpy.ndarray
        Index (into the city pool) of each store's city.
    tiers : pandas.DataFrame
        Rows of the ``tier`` table.
    """

    products: pd.DataFrame
    category_start: NDArray[np.int64]
    price: NDArray[np.float64]
    stores: pd.DataFrame
    store_city: NDArray[np.int64]
    tiers: pd.DataFrame


def _price_points(base: float, n: int, rng: np.random.Generator) -> NDArray[np.float64]:
    # Retail prices end in 9 (99, 129, 299): round a jittered base price that way.
    raw = base * rng.uniform(0.75, 1.35, size=n)
    step = 10.0 if base < 1000 else 100.0
    return np.maximum(np.round(raw / step) * step - 1.0, 9.0)


def build_products(pools: NamePools, rng: np.random.Generator) -> pd.DataFrame:
    """Return the ``product`` table: each item under each of its brands, sorted by price."""
    items = _ZH_ITEMS if pools.chinese else _EN_ITEMS
    sep = " " if pools.chinese else "|"
    rows = []
    for category in CATEGORIES:
        for item, base, brands in items[category]:
            names = brands.split(sep)
            prices = _price_points(base, len(names), rng)
            rows += [(category, f"{b} {item}", b, p) for b, p in zip(names, prices, strict=True)]
    frame = pd.DataFrame(rows, columns=["category", "name", "brand", "list_price"])
    order = {c: i for i, c in enumerate(CATEGORIES)}
    frame = frame.sort_values(
        ["category", "list_price"], key=lambda s: s.map(order) if s.name == "category" else s
    ).reset_index(drop=True)
    frame.insert(0, "product_id", [f"P{i + 1:05d}" for i in range(len(frame))])
    return frame


def build_stores(
    pools: NamePools, rng: np.random.Generator
) -> tuple[pd.DataFrame, NDArray[np.int64]]:
    """Return the ``store_location`` table and each store's city index.

    Bigger cities get more stores; the smallest get none, so their customers buy online.
    """
    sizes = np.array([w for _, _, w in pools.cities])
    per_city = np.floor(sizes / 3.0 + rng.random(len(sizes)) * 0.9).astype(np.int64)
    per_city = np.minimum(per_city, len(pools.malls))
    city_idx = np.repeat(np.arange(len(sizes)), per_city)
    names, tiers = [], []
    for city, count in zip(range(len(sizes)), per_city, strict=True):
        malls = rng.choice(len(pools.malls), size=count, replace=False)
        name, tier, _ = pools.cities[city]
        sep = "" if pools.chinese else " "
        names += [f"{name}{sep}{pools.malls[m]}" for m in malls]
        tiers += [tier] * int(count)
    opened = np.datetime64("2012-01-01") + rng.integers(0, 3650, size=len(names)).astype(
        "timedelta64[D]"
    )
    frame = pd.DataFrame(
        {
            "store_id": [f"S{i + 1:04d}" for i in range(len(names))],
            "name": names,
            "city": [pools.cities[c][0] for c in city_idx],
            "city_tier": tiers,
            "opened_at": opened.astype("datetime64[us]"),
        }
    )
    return frame, city_idx


def build_tiers(pools: NamePools) -> pd.DataFrame:
    """Return the ``tier`` table (普通/银卡/金卡/钻石 or Classic/Silver/Gold/Diamond)."""
    return pd.DataFrame(
        {
            "tier_id": [t[0] for t in TIERS],
            "name": [t[1] for t in TIERS],
            "label": [t[2] if pools.chinese else t[3] for t in TIERS],
            "level": [t[4] for t in TIERS],
            "min_spend_12m": [t[5] for t in TIERS],
        }
    )


def build_catalog(pools: NamePools, rng: np.random.Generator) -> Catalog:
    """Draw the products, stores and tiers of one synthetic retailer."""
    products = build_products(pools, rng)
    counts = products["category"].value_counts().reindex(list(CATEGORIES)).to_numpy()
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    stores, store_city = build_stores(pools, rng)
    return Catalog(
        products=products,
        category_start=starts,
        price=products["list_price"].to_numpy(dtype=np.float64),
        stores=stores,
        store_city=store_city,
        tiers=build_tiers(pools),
    )
