"""Word lists the name rules share (folded: NFKC + case folding, see `tokens.fold`).

`COMMON_WORDS`: ordinary English words that are also first names or surnames. A known
patient's name word that is one of these is only scrubbed when written like a name (see
`names.NameIndex`). `NOT_NAMES`: words that start or sit inside a capitalised run without
being a person's name: sentence openers, the vocabulary of this platform's events (supply
chain, pharmacy, manufacturing), weekdays and months, and words of organisation names. The
unseen-name detector (`detect.py`) never takes them for a name. Both lists are deliberately
small and readable: they are the measured false positives of `bench/phi_detection.py`, plus
their obvious relatives.
"""

from __future__ import annotations


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


COMMON_WORDS: frozenset[str] = _words(
    """
    will may mark grace brown hope joy faith summer bill june april august rose lily iris ruby
    pearl amber dawn eve faye frank gay glen herb jack jean jewel joe king long lane love
    major mason miles page park price rich rock sandy sky star stone story violet wade ward
    white young green black gray grey wood hill bell rice cook baker miller hunter fisher
    carter taylor cole west north south east chase chance christian earl gene guy ivy jay
    lee max nick pat penny ray rod rusty sue will wells winter woods art barb bud cliff
    don drew dean hall holly ken kit kitty lance lucky marsh mercy misty neil noble norman
    olive patience prince reed rob robin roger sage scott sterling sunny tad terry tom
    trinity trust valentine victor virgin wren august may march monday friday
    """
)

NOT_NAMES: frozenset[str] = _words(
    """
    a an the this that these those there here it its i i'm i've i'd we our you your he she
    they them his her my me us and or but so if then when while after before since because
    as at by for from in into of off on onto out over to under up with without via per
    is was were are be been am do did does done has have had not no yes please thanks thank
    hello hi dear regards best kind sincerely cheers ok okay great good fine excellent very
    also again just still only even all any each every some most more less many much few
    mr mrs ms miss mx dr doctor nurse pharmacist patient customer caller courier driver agent
    staff team manager operator analyst technician inspector supervisor member
    monday tuesday wednesday thursday friday saturday sunday today tomorrow yesterday
    january february march april may june july august september october november december
    jan feb mar apr jun jul aug sep sept oct nov dec mon tue tues wed thu thur thurs fri
    sat sun am pm est pst cst mst utc gmt
    pharmacy pharmacies clinic hospital medical center centre health care healthcare
    laboratory lab labs warehouse depot distribution logistics shipping carrier express
    freight transport delivery delivered deliveries shipment shipments package packages
    parcel box boxes carton cartons pallet pallets cooler ice pack packs order orders refill
    refills prescription prescriptions rx dose doses tablet tablets capsule capsules vial
    vials syringe syringes injection pen pens bottle bottles blister inhaler cream solution
    lot lots batch batches record records root cause action corrective preventive capa
    deviation deviations investigation review quality assurance control qa qc gmp sop
    equipment granulator tablet press coater mixer blender dryer reactor filler line room
    sensor logger reading readings temperature humidity pressure excursion alarm cold chain
    chamber fridge refrigerator freezer storage stored store stores
    sample samples test tests assay result results specification spec limit limits
    product products drug drugs medicine medicines medication medications generic brand
    inc llc ltd corp co company corporation group holdings pharma pharmaceuticals
    pharmaceutical labs systems services solutions supply supplies partners
    street st avenue ave road rd boulevard blvd lane ln drive court way place suite apt
    unit building floor dock gate door bay north south east west main
    city county state zip usa us uk eu fda dea cdc ups fedex dhl usps
    call called calling will-call note notes comment comments update updates tracking
    arrived arrival damaged crushed late early missing lost stolen returned return
    customs hold released rejected approved pending closed opened open new old
    out-of-specification airport mail hub saint
    mother father mom mum dad wife husband son daughter sister brother grandma grandpa
    grandmother grandfather aunt uncle neighbour neighbor friend partner recipient consignee
    contact ask
    """
)

# Words that announce a person's name right after them ("name is Okonkwo", "from Zuleika").
NAME_CUES: frozenset[str] = _words(
    """mr mrs ms miss mx patient customer caller signed name named regards sincerely
    mother father mom mum dad wife husband son daughter sister brother grandma grandpa
    grandmother grandfather aunt uncle neighbour neighbor friend partner recipient consignee
    contact ask"""
)
# Weaker: "from Bexley!" is a signature, "from Newark Airport" is not. The name must end the
# sentence or the text.
SIGN_OFF_CUES: frozenset[str] = _words("from thanks cheers love")
# A title before a surname marks a clinician, whose name is not patient data (and is kept).
PROVIDER_TITLES: frozenset[str] = frozenset({"dr", "doctor", "prof", "professor", "pharmacist"})
