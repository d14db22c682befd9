"""Built-in word lists for synthetic patients: names, streets, cities, ZIP and phone prefixes.

The names are deliberately distinctive (none is an ordinary English word, none is shorter
than five letters, none is spelt only with the hex letters a-f) so a test can search the
whole lake for every patient name as a whole word: a hit is then a real PHI leak, never a
coincidence with a word like "May" in a deviation note or a hex group in an event id.
"""

from __future__ import annotations

FIRST_NAMES: tuple[str, ...] = (
    "Aurelio", "Bexley", "Caspian", "Dagny", "Esmeralda", "Fenwick", "Giacomo", "Henrietta",
    "Ignatius", "Jessamyn", "Kasimir", "Leocadia", "Marisol", "Nikolai", "Octavia", "Perpetua",
    "Quillon", "Rosalind", "Saoirse", "Thaddeus", "Ulrika", "Valentina", "Wilhelmina",
    "Xiomara", "Yevgeny", "Zephyrine", "Anselm", "Benedikt", "Cosima", "Desmond", "Evander",
    "Florentyna", "Gwendolyn", "Horatio", "Isidora", "Joaquin", "Kazimiera", "Lysander",
    "Magdalena", "Niamh", "Oriana", "Radomir", "Sigourney", "Tobiah", "Ursula", "Vesna",
    "Wenceslas", "Ximena", "Yolanda", "Zbigniew", "Algernon", "Bronwyn", "Cordelia", "Dmitri",
    "Eleanora", "Guinevere", "Iolanthe", "Jovanka", "Katarzyna", "Leopold", "Milosz",
    "Nerissa", "Osvaldo", "Philippa", "Quentin", "Rasmus", "Svetlana", "Tancredi", "Ulysses",
    "Viktoria", "Wojciech", "Xavier", "Yasmina", "Zenobia", "Alastair", "Beatrix", "Cyprian",
    "Dorothea", "Eustace", "Fiorella", "Gottfried", "Hermione", "Isadora", "Jaroslav",
    "Kunigunde", "Leontyne", "Mstislav", "Nanette", "Ottoline", "Quirinus", "Rosamund",
    "Siobhan", "Theodora", "Ugolino", "Vladislav", "Winifred", "Yaroslava", "Zdenka",
    "Ambrose", "Bartholomew", "Demetrius", "Ermengarde", "Fridtjof", "Gaspard", "Hildegard",
    "Ingeborg", "Jedidiah", "Kleopatra", "Ludovico", "Mechthild", "Nikodem", "Ondine",
    "Pankraz", "Radegund", "Sebastiano", "Tiberius", "Ulrich", "Valdemar", "Wulfric", "Ysolde",
    "Zoltan", "Apollonia", "Berenike", "Casimir", "Domenico", "Evangelina", "Ferdinand",
    "Griselda", "Humbert", "Imelda", "Jolanta", "Kornelia", "Lucius", "Maximilian", "Norberto",
    "Orsolya", "Pasquale", "Reinhold", "Sigismund", "Teodora", "Urbano", "Venceslao",
    "Walburga", "Yevgenia", "Zacharias", "Anastasia", "Bonifacio", "Crescenzia", "Dobromir",
    "Edeltraud", "Filomena", "Gervasio", "Hortensia", "Iphigenia", "Jacinta", "Kassandra",
    "Liutgard", "Mirabella", "Nepomuk", "Ottokar", "Prudencio", "Rafaela", "Scholastica",
    "Tarquin", "Vitalis", "Wiltrud", "Yannick", "Zuleika", "Agrippina", "Bogumil",
    "Constantijn", "Dragomir", "Eberhard", "Fortunato", "Gudrun", "Hieronymus", "Ildiko",
    "Jadwiga", "Konstantin", "Leodegar", "Melisande", "Nikephoros", "Odalys", "Philomena",
    "Roderich", "Seraphina", "Theophilus", "Udalrich", "Vasilisa", "Wolfram", "Xanthippe",
    "Yolande", "Zenaida", "Adalbert", "Borislav", "Celestyna", "Dariusz", "Elzbieta",
    "Feodora", "Honorata", "Ireneusz", "Jozefina", "Klementyna", "Ladislav", "Malgorzata",
    "Nadezhda", "Olimpia", "Przemyslaw", "Radoslaw", "Stanislawa", "Tymoteusz", "Urszula",
    "Wieslawa", "Zdzislaw", "Agnieszka", "Bozena", "Czeslaw", "Eugeniusz", "Grazyna",
    "Henryk", "Jadranka", "Krzysztof", "Ljubica", "Miroslava", "Nevenka", "Ognjen", "Predrag",
    "Ratimir", "Slavica", "Tihomir", "Zvonimir", "Aleksandar", "Branimir", "Dusanka",
    "Gordana", "Hrvoje", "Ivanka", "Jelisaveta", "Kresimir", "Ljiljana", "Mladen", "Nikoleta",
    "Radmila", "Snezana", "Vojislav", "Zorica",
)  # fmt: skip

LAST_NAMES: tuple[str, ...] = (
    "Abernathy", "Bartkowiak", "Castellanos", "Dziedzic", "Eberhardt", "Fitzwilliam",
    "Grzybowski", "Halvorsen", "Ibarguen", "Jankowski", "Kowalczyk", "Lindqvist",
    "Mazurkiewicz", "Nakashima", "Oyelaran", "Pietrangeli", "Quintanilla", "Rautenberg",
    "Szczepanski", "Takahashi", "Uchechukwu", "Vandersloot", "Wojcikowski", "Xenakis",
    "Yamaguchi", "Zawadzki", "Abramowicz", "Bergstrom", "Cavanaugh", "Echeverria", "Fujimoto",
    "Galvanauskas", "Hadjipavlou", "Iwasaki", "Jablonski", "Kristiansen", "Lombardozzi",
    "Marchetti", "Nowakowski", "Okonkwo", "Papadopoulos", "Quaglieri", "Rasmussen", "Sandoval",
    "Urquhart", "Valenzuela", "Wieczorek", "Yilmaz", "Zielinski", "Adeyemi", "Bianchini",
    "Chaudhry", "Delacroix", "Efthimiou", "Gallagher", "Hoffmeister", "Ignatiev", "Jaramillo",
    "Kaczmarek", "Lewandowski", "Maldonado", "Nwachukwu", "Ostrowski", "Pellegrino",
    "Quiroga", "Rydzewski", "Sokolowski", "Trzaska", "Ugarte", "Wisniewski", "Yanagawa",
    "Agbaje", "Baranowski", "Cieslak", "Dabrowski", "Esposito", "Falkenrath", "Gutierrez",
    "Hernandez", "Iglesias", "Jaworski", "Kuznetsov", "Lisowski", "Moskowitz", "Nieminen",
    "Obradovic", "Pietrzak", "Radziwill", "Schwarzkopf", "Tomaszewski", "Ulyanov", "Vukovic",
    "Wasserman", "Yoshida", "Zamoyski", "Achterberg", "Brzezinski", "Ciesielski",
    "Dorfmeister", "Eisenhauer", "Fonseca", "Gorecki", "Hakkinen", "Iannuzzi", "Jovanovic",
    "Kowalewski", "Lautenschlager", "Mikkelsen", "Nakamura", "Oberholzer", "Przybylski",
    "Quattrocchi", "Rozenberg", "Stankiewicz", "Tsiolkovsky", "Uzunoglu", "Vasilescu",
    "Wojtaszek", "Yevtushenko", "Zukowski", "Adamczyk", "Bogdanovic", "Chmielewski",
    "Domagala", "Ekwueme", "Fabrizi", "Gawronski", "Hrabowski", "Ilunga", "Jedrzejczak",
    "Kaminski", "Lukaszewicz", "Mrozowski", "Nikolaidis", "Olszewski", "Pawlowski",
    "Rutkowski", "Sadowski", "Tarkowski", "Urbanski", "Wroblewski", "Zalewski",
    "Andrzejewski", "Bukowski", "Czarnecki", "Dudzinski", "Falkowski", "Grabowski",
    "Herzberger", "Jasinski", "Kubiak", "Lesniak", "Majewski", "Nowicki", "Orzechowski",
    "Pokorski", "Rogalski", "Sikorski", "Tokarczyk", "Walczak", "Zielonka", "Aguirrezabal",
    "Bengoechea", "Cifuentes", "Dominguez", "Etxeberria", "Fuentealba", "Goikoetxea",
    "Irigoyen", "Jauregui", "Larrazabal", "Mendizabal", "Navarrete", "Olabarrieta", "Quesada",
    "Sagastume", "Txurruka", "Urrutia", "Villalobos", "Zubizarreta", "Akinwande", "Babatunde",
    "Chukwuemeka", "Durojaiye", "Ezeoke", "Fashola", "Gbadamosi", "Ikechukwu", "Jegede",
    "Kolawole", "Lawanson", "Mbanefo", "Obiang", "Ogunleye", "Olawale", "Sowande",
    "Ugochukwu", "Wuraola", "Yakubu", "Zuberi", "Arkwright", "Blomqvist", "Chernyshev",
    "Dalgleish", "Engelbrecht", "Fagerlund", "Gunnarsson", "Haraldsen", "Isaksson",
    "Johannsen", "Kjellberg", "Lundqvist", "Magnusson", "Nordqvist", "Oxenstierna",
    "Petterson", "Ragnarsson", "Sigurdsson", "Thorvaldsen", "Vesterberg", "Wahlgren",
)  # fmt: skip

STREET_NAMES: tuple[str, ...] = (
    "Juniper", "Sycamore", "Larkspur", "Cedar", "Willow", "Magnolia", "Chestnut", "Linden",
    "Alder", "Birch", "Poplar", "Laurel", "Hickory", "Spruce", "Orchard", "Meadow", "Ridge",
    "Valley", "Harbor", "Summit", "Lakeview", "Highland", "Fairview", "Riverside", "Elm",
    "Walnut", "Aspen", "Cypress", "Mill", "Church",
)  # fmt: skip

STREET_SUFFIXES: tuple[str, ...] = ("St", "Ave", "Rd", "Blvd", "Ln", "Dr", "Ct", "Way", "Pl")

CITIES: dict[str, tuple[str, ...]] = {
    "MA": ("Worcester", "Springfield", "Lowell", "Cambridge", "Quincy"),
    "NY": ("Buffalo", "Rochester", "Yonkers", "Albany", "Syracuse"),
    "PA": ("Pittsburgh", "Allentown", "Erie", "Scranton", "Lancaster"),
    "NJ": ("Newark", "Paterson", "Trenton", "Camden", "Edison"),
    "CT": ("Hartford", "Stamford", "Bridgeport", "Waterbury", "Norwalk"),
    "GA": ("Atlanta", "Savannah", "Augusta", "Macon", "Athens"),
    "FL": ("Miami", "Tampa", "Jacksonville", "Tallahassee", "Gainesville"),
    "NC": ("Charlotte", "Raleigh", "Durham", "Greensboro", "Asheville"),
    "TN": ("Nashville", "Memphis", "Knoxville", "Chattanooga", "Clarksville"),
    "IL": ("Chicago", "Aurora", "Rockford", "Peoria", "Naperville"),
    "MI": ("Detroit", "Lansing", "Flint", "Kalamazoo", "Ann Arbor"),
    "MN": ("Minneapolis", "Duluth", "Saint Paul", "Bloomington", "Mankato"),
    "OH": ("Cleveland", "Akron", "Toledo", "Dayton", "Cincinnati"),
    "MO": ("Kansas City", "Springfield", "Columbia", "Independence", "Joplin"),
    "TX": ("Dallas", "Houston", "El Paso", "Lubbock", "San Antonio"),
    "AZ": ("Phoenix", "Tucson", "Flagstaff", "Yuma", "Tempe"),
    "CO": ("Denver", "Boulder", "Pueblo", "Greeley", "Aurora"),
    "WA": ("Seattle", "Spokane", "Tacoma", "Yakima", "Bellevue"),
    "OR": ("Portland", "Salem", "Medford", "Bend", "Corvallis"),
    "CA": ("Oakland", "Fresno", "Sacramento", "Pasadena", "Bakersfield"),
    "UT": ("Provo", "Ogden", "Orem", "Logan", "Sandy"),
}

# First three ZIP digits used for ordinary addresses in each state (Safe Harbor's restricted
# three-digit areas are left out here and used only on purpose, below).
ZIP3: dict[str, tuple[str, ...]] = {
    "MA": ("010", "011", "014", "016", "017", "018", "019", "021", "024", "027"),
    "NY": ("100", "101", "104", "112", "113", "117", "122", "132", "142", "146"),
    "PA": ("150", "152", "160", "170", "175", "180", "181", "184", "190", "191"),
    "NJ": ("070", "071", "073", "074", "075", "077", "080", "085", "086", "088"),
    "CT": ("060", "061", "062", "064", "065", "066", "067", "068", "069"),
    "GA": ("300", "301", "303", "305", "306", "308", "310", "313", "314", "317"),
    "FL": ("320", "322", "323", "327", "328", "331", "333", "335", "336", "338"),
    "NC": ("270", "272", "274", "275", "276", "277", "280", "282", "284", "287"),
    "TN": ("370", "371", "372", "373", "374", "376", "377", "379", "380", "381"),
    "IL": ("600", "601", "604", "605", "606", "610", "611", "615", "617", "627"),
    "MI": ("480", "481", "482", "483", "488", "489", "490", "492", "493", "495"),
    "MN": ("550", "551", "553", "554", "557", "558", "559", "560", "561", "565"),
    "OH": ("430", "432", "436", "440", "441", "443", "444", "450", "452", "454"),
    "MO": ("630", "631", "633", "640", "641", "645", "650", "652", "656", "658"),
    "TX": ("750", "752", "760", "761", "770", "773", "780", "782", "787", "794"),
    "AZ": ("850", "852", "853", "855", "856", "857", "859", "860", "863", "864"),
    "CO": ("800", "801", "802", "803", "804", "805", "806", "808", "810", "815"),
    "WA": ("980", "981", "982", "983", "984", "985", "988", "989", "990", "992"),
    "OR": ("970", "971", "972", "973", "974", "975", "976", "977", "978", "979"),
    "CA": ("900", "902", "910", "917", "921", "926", "937", "941", "945", "958"),
    "UT": ("840", "841", "843", "844", "846", "847"),
}

# Three-digit ZIP areas with fewer than 20,000 people, which Safe Harbor requires to be
# reported as 000 (in both the 2000 and the 2010 census lists), with a town in each.
RESTRICTED_ZIP3: tuple[tuple[str, str, str], ...] = (
    ("036", "NH", "Claremont"),
    ("059", "VT", "Newport"),
    ("102", "NY", "New York"),
    ("203", "DC", "Washington"),
    ("556", "MN", "Grand Marais"),
    ("692", "NE", "Valentine"),
    ("821", "WY", "Yellowstone National Park"),
    ("823", "WY", "Rawlins"),
    ("878", "NM", "Socorro"),
    ("879", "NM", "Truth or Consequences"),
    ("884", "NM", "Tucumcari"),
    ("893", "NV", "Ely"),
)

AREA_CODES: dict[str, tuple[str, ...]] = {
    "MA": ("617", "508", "413", "978"), "NY": ("212", "315", "518", "716"),
    "PA": ("215", "412", "610", "717"), "NJ": ("201", "609", "732", "973"),
    "CT": ("203", "860"), "GA": ("404", "478", "706", "912"),
    "FL": ("305", "407", "813", "904"), "NC": ("704", "919", "336"),
    "TN": ("615", "901", "865"), "IL": ("312", "815", "309"), "MI": ("313", "517", "616"),
    "MN": ("612", "218", "507"), "OH": ("216", "330", "419", "937"),
    "MO": ("314", "816", "417"), "TX": ("214", "713", "512", "806"),
    "AZ": ("602", "520", "928"), "CO": ("303", "719", "970"), "WA": ("206", "509", "253"),
    "OR": ("503", "541"), "CA": ("415", "213", "619", "916", "559"), "UT": ("801", "435"),
    "NH": ("603",), "VT": ("802",), "DC": ("202",), "NE": ("402", "308"), "WY": ("307",),
    "NM": ("505", "575"), "NV": ("702", "775"),
}  # fmt: skip

EMAIL_DOMAINS: tuple[str, ...] = ("example.com", "example.org", "example.net")
